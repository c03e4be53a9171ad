"""Estimate the match weights from the data: u by random sampling, m by EM.

Fellegi–Sunter gives each comparison level a weight log₂(m/u): m is how often the level is
seen among pairs of records of *one* person, u among pairs of *different* persons.

* **u** — from random pairs of signatures. Among n persons a random pair is the same
  person with probability about 1/n, so the level frequencies of random pairs are u.
* **m** — by expectation–maximisation over the pairs the resolver actually weighs: the
  candidate pairs from blocking, plus pairs already joined by a shared valid identifier
  (which start EM from a sound m — without them, candidate pairs are mostly look-alikes).
  u stays fixed, as Splink does; each round re-weighs every pair by its posterior
  probability of being a match and re-counts m.
* **prior** — the share of matches EM finds among the candidate pairs.

Levels with no evidence ("-") are estimated like any other. Counts are smoothed (add one)
and weights clipped to ±``CLIP`` so that a level never seen in one class cannot become an
infinite veto — except an identifier conflict, which the resolver forbids anyway.

Run it as ``python -m reconciler.identity.training --output model.json`` with the usual
``RECONCILER_*`` environment; point ``identity.model_file`` at the file to use it.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from reconciler.identity.resolve import (
    FIELDS,
    IdentityResolver,
    MatchWeights,
    WeightTable,
    compare,
)

CLIP = 20.0
FIELD_NAMES = list(FIELDS)
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass
class Estimate:
    table: WeightTable
    m: dict[str, FloatArray]
    u: dict[str, FloatArray]
    match_share: float
    iterations: int
    pairs: int
    random_pairs: int


def level_matrix(features: Mapping[str, list[object]],
                 pairs: list[tuple[int, int]]) -> IntArray:
    """One row per pair, one column per field: the index of the level in ``FIELDS``."""
    index = {f: {lv: k for k, lv in enumerate(levels)} for f, levels in FIELDS.items()}
    out = np.empty((len(pairs), len(FIELD_NAMES)), dtype=np.int64)
    for row, (i, j) in enumerate(pairs):
        levels, _ = compare(features, i, j)
        for col, name in enumerate(FIELD_NAMES):
            out[row, col] = index[name][levels[name]]
    return out


def frequencies(levels: IntArray, weights: FloatArray | None = None) -> dict[str, FloatArray]:
    """Smoothed share of each level per field (add-one), optionally weighted per pair."""
    w = np.ones(len(levels)) if weights is None else weights
    out: dict[str, FloatArray] = {}
    for col, name in enumerate(FIELD_NAMES):
        counts = np.bincount(levels[:, col], weights=w, minlength=len(FIELDS[name]))
        out[name] = (counts + 1.0) / (counts.sum() + len(FIELDS[name]))
    return out


def expectation_maximisation(levels: IntArray, u: Mapping[str, FloatArray],
                             m: dict[str, FloatArray], share: float,
                             max_iterations: int = 50,
                             tolerance: float = 1e-6) -> tuple[dict[str, FloatArray], float, int]:
    """EM for m and the match share with u fixed; returns (m, share, iterations)."""
    log_u = sum(np.log(u[name][levels[:, col]]) for col, name in enumerate(FIELD_NAMES))
    iteration = 0
    for iteration in range(1, max_iterations + 1):  # noqa: B007 - the count is returned
        log_m = sum(np.log(m[name][levels[:, col]]) for col, name in enumerate(FIELD_NAMES))
        odds = math.log(share) - math.log1p(-share) + log_m - log_u
        posterior = 1.0 / (1.0 + np.exp(-np.clip(odds, -700, 700)))
        new_m = frequencies(levels, posterior)
        new_share = float(np.clip(posterior.mean(), 1e-6, 1 - 1e-6))
        change = max(float(np.abs(new_m[n] - m[n]).max()) for n in FIELD_NAMES)
        m, share = new_m, new_share
        if change < tolerance:
            break
    return m, share, iteration


def _within_identifier_pairs(clusters_of: IntArray, limit: int,
                             rng: np.random.Generator) -> list[tuple[int, int]]:
    order = np.argsort(clusters_of, kind="stable")
    sorted_roots = clusters_of[order]
    same = np.nonzero(sorted_roots[1:] == sorted_roots[:-1])[0]
    if len(same) > limit:
        same = rng.choice(same, size=limit, replace=False)
    return [(int(order[k]), int(order[k + 1])) for k in same]


def estimate(records: pd.DataFrame, resolver: IdentityResolver | None = None,
             random_pairs: int = 200_000, seed: int = 7) -> Estimate:
    resolver = resolver or IdentityResolver()
    rng = np.random.default_rng(seed)
    _frame, _codes, _first, sigs, features, clusters = resolver.prepare(records)
    n = len(sigs)
    if n < 2:
        raise ValueError("need at least two distinct records to estimate weights")
    roots = np.fromiter((clusters.find(i) for i in range(n)), dtype=np.int64, count=n)
    a = rng.integers(0, n, size=random_pairs)
    b = rng.integers(0, n, size=random_pairs)
    keep = roots[a] != roots[b]
    random = list(zip(a[keep].tolist(), b[keep].tolist(), strict=True))
    u = frequencies(level_matrix(features, random))
    candidates = resolver._candidate_pairs(sigs, features, clusters)
    known = _within_identifier_pairs(roots, limit=max(len(candidates), 10_000), rng=rng)
    levels = level_matrix(features, candidates + known)
    m0 = frequencies(level_matrix(features, known)) if known else dict(u)
    m, _share, iterations = expectation_maximisation(levels, u, m0, share=0.5)
    # the prior is the match share among candidate pairs alone, under the fitted m and u
    cand_levels = levels[: len(candidates)]
    _m, share, _ = expectation_maximisation(cand_levels, u, m, share=0.5, max_iterations=1) \
        if len(candidates) else (m, 0.5, 0)
    weights: dict[tuple[str, str], float] = {}
    for name, names in FIELDS.items():
        for k, level in enumerate(names):
            weights[(name, level)] = float(np.clip(np.log2(m[name][k] / u[name][k]),
                                                   -CLIP, CLIP))
    weights[("identifier", "conflict")] = MatchWeights().identifier_conflict
    prior = math.log2(share / (1 - share))
    table = WeightTable(prior=prior, weights=weights)
    return Estimate(table=table, m=m, u=u, match_share=share, iterations=iterations,
                    pairs=len(levels), random_pairs=len(random))


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
