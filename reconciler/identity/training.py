"""Estimate the match weights from the data: u by random sampling, m by EM.

Fellegi–Sunter gives each comparison level a weight log₂(m/u): m is how often the level is
seen among pairs of records of *one* person, u among pairs of *different* persons.

* **u** — from random pairs of signatures (under an ``exclusive`` configuration, of
  records from different files). Among n persons a random pair is the same person with
  probability about 1/n, so the level frequencies of random pairs are u.
* **m** — by expectation–maximisation over the pairs the resolver actually weighs: the
  candidate pairs from blocking, plus pairs already joined by a shared valid identifier
  (which start EM from a sound m — without them, candidate pairs are mostly look-alikes).
  u stays fixed, as Splink does; each round re-weighs every pair by its posterior
  probability of being a match and re-counts m. Where no pair is known to be one person
  (two files without identifiers), EM starts from each comparison's ``m_start``.
* **prior** — the share of matches EM finds among the candidate pairs.

Levels with no evidence ("-") are estimated like any other. Counts are smoothed (add one)
and weights clipped to ±``CLIP`` so that a level never seen in one class cannot become an
infinite veto — except an identifier conflict, which the resolver forbids anyway. A level
seen in neither sample gets weight 0.

The comparisons are the resolver's :class:`~reconciler.identity.comparisons.Configuration`
(by default the product's; ``benchmarks/febrl4.py`` estimates its FEBRL configuration).

Run it as ``python -m reconciler.identity.training --output model.json`` with the usual
``RECONCILER_*`` environment; point ``identity.model_file`` at the file to use it.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from reconciler.identity.resolve import (
    FIELDS,
    IdentityResolver,
    MatchWeights,
    Prepared,
    WeightTable,
)

CLIP = 20.0
FIELD_NAMES = list(FIELDS)
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Fields = Mapping[str, Sequence[str]]


@dataclass
class Estimate:
    table: WeightTable
    m: dict[str, FloatArray]
    u: dict[str, FloatArray]
    match_share: float
    iterations: int
    pairs: int
    random_pairs: int


def level_matrix(resolver: IdentityResolver, prep: Prepared, i: IntArray,
                 j: IntArray) -> IntArray:
    """One row per pair, one column per comparison: the index of its level."""
    return resolver.grade(prep, i, j).astype(np.int64)


def frequencies(levels: IntArray, weights: FloatArray | None = None,
                fields: Fields = FIELDS) -> dict[str, FloatArray]:
    """Smoothed share of each level per field (add-one), optionally weighted per pair."""
    w = np.ones(len(levels)) if weights is None else weights
    out: dict[str, FloatArray] = {}
    for col, (name, names) in enumerate(fields.items()):
        counts = np.bincount(levels[:, col], weights=w, minlength=len(names))
        out[name] = (counts + 1.0) / (counts.sum() + len(names))
    return out


def expectation_maximisation(levels: IntArray, u: Mapping[str, FloatArray],
                             m: dict[str, FloatArray], share: float,
                             max_iterations: int = 50,
                             tolerance: float = 1e-6) -> tuple[dict[str, FloatArray], float, int]:
    """EM for m and the match share with u fixed; returns (m, share, iterations). The
    fields are ``u``'s, in its order (the columns of ``levels``)."""
    fields = {name: [str(k) for k in range(len(p))] for name, p in u.items()}
    names = list(fields)
    log_u = sum(np.log(u[name][levels[:, col]]) for col, name in enumerate(names))
    iteration = 0
    for iteration in range(1, max_iterations + 1):  # noqa: B007 - the count is returned
        log_m = sum(np.log(m[name][levels[:, col]]) for col, name in enumerate(names))
        odds = math.log(share) - math.log1p(-share) + log_m - log_u
        posterior = 1.0 / (1.0 + np.exp(-np.clip(odds, -700, 700)))
        new_m = frequencies(levels, posterior, fields)
        new_share = float(np.clip(posterior.mean(), 1e-6, 1 - 1e-6))
        change = max(float(np.abs(new_m[n] - m[n]).max()) for n in names)
        m, share = new_m, new_share
        if change < tolerance:
            break
    return m, share, iteration


def _within_identifier_pairs(clusters_of: IntArray, limit: int,
                             rng: np.random.Generator) -> tuple[IntArray, IntArray]:
    order = np.argsort(clusters_of, kind="stable")
    sorted_roots = clusters_of[order]
    same = np.nonzero(sorted_roots[1:] == sorted_roots[:-1])[0]
    if len(same) > limit:
        same = rng.choice(same, size=limit, replace=False)
    return order[same].astype(np.int64), order[same + 1].astype(np.int64)


def estimate(records: pd.DataFrame, resolver: IdentityResolver | None = None,
             random_pairs: int = 200_000, seed: int = 7) -> Estimate:
    resolver = resolver or IdentityResolver()
    return estimate_prepared(resolver, resolver.prepare(records), random_pairs, seed)


def estimate_prepared(resolver: IdentityResolver, prep: Prepared,
                      random_pairs: int = 200_000, seed: int = 7) -> Estimate:
    """The weights of ``resolver``'s configuration estimated from prepared records (which
    then still serve a :meth:`~IdentityResolver.resolve_prepared`: the candidate pairs and
    their levels are computed once)."""
    fields = resolver.configuration.fields
    rng = np.random.default_rng(seed)
    n = len(prep.sigs)
    if n < 2:
        raise ValueError("need at least two distinct records to estimate weights")
    roots = prep.roots()
    a = rng.integers(0, n, size=random_pairs)
    b = rng.integers(0, n, size=random_pairs)
    keep = roots[a] != roots[b]
    exclusive = resolver.configuration.exclusive
    if exclusive:  # random pairs like the candidates: one record from each file
        files = pd.factorize(prep.features.values(exclusive), use_na_sentinel=True)[0]
        keep &= (files[a] != files[b]) | (files[a] < 0)
    random_levels = level_matrix(resolver, prep, a[keep], b[keep])
    u = frequencies(random_levels, fields=fields)
    ci, cj = resolver.candidate_pairs(prep)
    ki, kj = _within_identifier_pairs(roots, limit=max(len(ci), 10_000), rng=rng)
    cand_levels = level_matrix(resolver, prep, ci, cj)
    known_levels = level_matrix(resolver, prep, ki, kj)
    levels = np.concatenate([cand_levels, known_levels])
    if len(ki):
        m0 = frequencies(known_levels, fields=fields)
    else:  # nothing known to be one person: start from the comparisons' own guess
        m0 = {c.name: np.asarray(c.m_start(), dtype=np.float64)
              for c in resolver.configuration.comparisons}
    m, _share, iterations = expectation_maximisation(levels, u, m0, share=0.5)
    # the prior is the match share among candidate pairs alone, under the fitted m and u
    _m, share, _ = expectation_maximisation(cand_levels, u, m, share=0.5, max_iterations=1) \
        if len(ci) else (m, 0.5, 0)
    weights: dict[tuple[str, str], float] = {}
    for col, (name, names) in enumerate(fields.items()):
        seen = (np.bincount(random_levels[:, col], minlength=len(names))
                + np.bincount(levels[:, col], minlength=len(names)))
        for k, level in enumerate(names):
            # a level neither sample ever showed has no evidence to weigh
            weights[(name, level)] = float(np.clip(np.log2(m[name][k] / u[name][k]),
                                                   -CLIP, CLIP)) if seen[k] else 0.0
    if ("identifier", "conflict") in weights:
        weights[("identifier", "conflict")] = MatchWeights().identifier_conflict
    prior = math.log2(share / (1 - share))
    table = WeightTable(prior=prior, weights=weights)
    return Estimate(table=table, m=m, u=u, match_share=share, iterations=iterations,
                    pairs=len(levels), random_pairs=int(keep.sum()))


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - thin CLI
    from reconciler.config import load_settings
    from reconciler.pipeline import PARTNER_COLUMNS, Reconciler, _identity_records, _partner_frame

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", "-o", type=Path, required=True)
    parser.add_argument("--random-pairs", type=int, default=200_000)
    args = parser.parse_args(argv)
    app = Reconciler.from_settings(load_settings())
    with app.engine.connect() as conn:
        partner = {f: _partner_frame(conn, f, cols) for f, cols in PARTNER_COLUMNS.items()}
        records = _identity_records(partner, app.registry.contributors(conn),
                                    app.registry.engagements(conn))
    result = estimate(records, random_pairs=args.random_pairs)
    args.output.write_text(json.dumps(result.table.to_json(), indent=2) + "\n")
    print(f"estimated from {result.pairs:,} pairs and {result.random_pairs:,} random pairs "
          f"in {result.iterations} EM rounds; match share among candidates "
          f"{result.match_share:.3f}; written to {args.output}")


if __name__ == "__main__":  # pragma: no cover
    main()
