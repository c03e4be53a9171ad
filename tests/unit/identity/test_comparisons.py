"""Comparisons, blocking rules and configurations — and that the product's default is the
resolver's model as it always was: each test below fails if a default weight, threshold or
level changes meaning."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.identity.comparisons import (
    BlockOn,
    Comparison,
    Configuration,
    EditDistance,
    ExactMatch,
    Features,
    NameSimilarity,
    StringSimilarity,
    block_pairs,
)
from reconciler.identity.index import PersonIndex
from reconciler.identity.resolve import (
    DEFAULT,
    FIELDS,
    LEVEL_WORDS,
    IdentityResolver,
    MatchWeights,
    WeightTable,
    identity_frame,
)
from reconciler.identity.training import estimate_prepared


def features(**columns: Sequence[object]) -> Features:
    return Features(pd.DataFrame(columns), {})


def grade(comparison: Comparison, f: Features, pairs: list[tuple[int, int]]) -> list[str]:
    i = np.array([p[0] for p in pairs], dtype=np.int64)
    j = np.array([p[1] for p in pairs], dtype=np.int64)
    return [comparison.levels[k] for k in comparison.grade(f, i, j)]


# -- generic comparisons ------------------------------------------------------------------


def test_string_similarity_grades_at_its_jaro_winkler_thresholds() -> None:
    c = StringSimilarity("surname", (0.92, 0.88, 0.70))
    assert c.levels == ("same", "≥0.92", "≥0.88", "≥0.7", "differs", "-")
    f = features(surname=["martha", "marhta", "marta", "mary", "zygmunt", None, ""])
    assert grade(c, f, [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (0, 6)]) == [
        "same", "≥0.92", "≥0.92", "≥0.7", "differs", "-", "-"]
    assert c.describe("≥0.88") == "surname similar (Jaro–Winkler ≥ 0.88)"


def test_edit_distance_counts_a_transposition_as_one_edit() -> None:
    c = EditDistance("postcode", (1, 2))
    assert c.levels == ("same", "≤1", "≤2", "differs", "-")
    f = features(postcode=["4223", "4232", "4325", "5555", "4", None])
    assert grade(c, f, [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (0, 5)]) == [
        "same", "≤1", "≤2", "differs", "differs", "-"]


def test_exact_match_with_and_without_disagreement() -> None:
    f = features(state=["nsw", "nsw", "vic", None], passport=["P1", "P1", "P2", None])
    assert grade(ExactMatch("state"), f, [(0, 1), (0, 2), (0, 3)]) == ["same", "differs", "-"]
    renewal = ExactMatch("passport", disagreement=False)
    assert renewal.levels == ("same", "-")
    assert grade(renewal, f, [(0, 1), (0, 2), (0, 3)]) == ["same", "-", "-"]


def test_missing_values_are_no_evidence_whatever_their_spelling() -> None:
    f = features(x=["a", None, float("nan"), "", pd.NA])
    assert f.values("x").tolist() == ["a", None, None, None, None]
    assert grade(ExactMatch("x"), f, [(0, k) for k in range(1, 5)]) == ["-"] * 4


def test_m_start_is_a_distribution_that_favours_agreement() -> None:
    for c in (StringSimilarity("a"), EditDistance("b"), ExactMatch("c"), NameSimilarity()):
        m = c.m_start()
        assert len(m) == len(c.levels) and abs(sum(m) - 1) < 1e-12
        graded = [p for p, lv in zip(m, c.levels, strict=True) if lv != "-"]
        assert graded == sorted(graded, reverse=True)


def test_thresholds_must_go_strictest_first() -> None:
    with pytest.raises(ValueError):
        StringSimilarity("a", (0.7, 0.9))
    with pytest.raises(ValueError):
        EditDistance("a", (2, 1))


# -- blocking -------------------------------------------------------------------------------


def test_block_on_keys_skip_missing_values_and_unordered_meets_a_swap() -> None:
    f = features(given=["ann", "lee", "ann", None], surname=["lee", "ann", "lee", "lee"])
    sig, keys = BlockOn(("given", "surname"), unordered=True).keys(f)
    assert sig.tolist() == [0, 1, 2]
    assert keys[0] == keys[1] == keys[2]
    sig, keys = BlockOn(("given", "surname")).keys(f)
    assert keys[0] == keys[2] != keys[1]
    assert BlockOn(("given", "surname"), unordered=True).row_keys(
        {"given": "lee", "surname": "ann"}) == [keys[0].replace("=", "~", 1)]
    assert BlockOn(("given",)).row_keys({"given": None}) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.sampled_from("abcdefg")), max_size=80),
       st.integers(2, 6))
def test_block_pairs_are_every_pair_of_every_small_enough_block(
        memberships: list[tuple[int, str]], max_block: int) -> None:
    n = 31
    sig = np.array([m[0] for m in memberships], dtype=np.int64)
    keys = [m[1] for m in memberships]
    got = set(block_pairs(sig, keys, max_block, n).tolist())
    expected: set[int] = set()
    for key in set(keys):
        members = [s for s, k in memberships if k == key]
        if 2 <= len(members) <= max_block:
            expected.update(min(a, b) * n + max(a, b)
                            for a, b in itertools.combinations(members, 2) if a != b)
    assert got == expected


# -- configurations ------------------------------------------------------------------------


def test_a_configuration_needs_unique_comparison_names_and_knows_its_columns() -> None:
    with pytest.raises(ValueError):
        Configuration((ExactMatch("a"), StringSimilarity("a")), ())
    config = DEFAULT.extend([EditDistance("postcode")], [BlockOn(("postcode", "state"))],
                            exclusive="file")
    assert config.comparisons[: len(DEFAULT.comparisons)] == DEFAULT.comparisons
    assert {"postcode", "state", "file"} <= set(config.columns)
    assert IdentityResolver(configuration=config).extra_columns == ["postcode", "state", "file"]
    assert IdentityResolver().extra_columns == []


# -- the product's default is what it always was -------------------------------------------


def test_the_default_comparisons_and_levels_are_the_products() -> None:
    assert FIELDS == {
        "identifier": ("conflict", "-"),
        "name": ("same", "close", "similar", "weak", "differs", "-"),
        "birth_date": ("same", "same_default", "swapped", "year", "differs", "-"),
        "nationality": ("same", "differs", "-"),
        "sex": ("same", "differs", "-"),
        "typo": ("one_keystroke", "-"),
        "passport": ("same", "-"),
        "employer": ("same", "-"),
    }
    name = DEFAULT.comparisons[1]
    assert isinstance(name, NameSimilarity) and name.thresholds == (0.97, 0.90, 0.80, 0.65)
    assert LEVEL_WORDS == {
        ("identifier", "conflict"): "identifiers differ",
        ("name", "same"): "name same", ("name", "close"): "name close",
        ("name", "similar"): "name similar", ("name", "weak"): "name weakly similar",
        ("name", "differs"): "name differs",
        ("birth_date", "same"): "birth date same",
        ("birth_date", "same_default"): "birth date same (a default date)",
        ("birth_date", "swapped"): "birth date day/month swapped",
        ("birth_date", "year"): "birth year same", ("birth_date", "differs"): "birth date differs",
        ("nationality", "same"): "nationality same",
        ("nationality", "differs"): "nationality differs",
        ("sex", "same"): "sex same", ("sex", "differs"): "sex differs",
        ("typo", "one_keystroke"): "identifier one keystroke apart (a typo)",
        ("passport", "same"): "passport same", ("employer", "same"): "same employer",
    }
    assert DEFAULT.exclusive is None


def test_the_default_weights_are_the_products() -> None:
    table = WeightTable.from_match_weights(MatchWeights())
    assert (table.prior, table.tf_floor, table.tf_ceiling) == (-9.0, -2.0, 1.0)
    assert dict(table.weights) == {
        ("identifier", "conflict"): -25.0,
        ("name", "same"): 9.0, ("name", "close"): 6.5, ("name", "similar"): 3.0,
        ("name", "weak"): -1.0, ("name", "differs"): -8.0,
        ("birth_date", "same"): 7.0, ("birth_date", "same_default"): 2.0,
        ("birth_date", "swapped"): 2.5, ("birth_date", "year"): 1.0,
        ("birth_date", "differs"): -8.0,
        ("nationality", "same"): 1.5, ("nationality", "differs"): -6.0,
        ("sex", "same"): 0.3, ("sex", "differs"): -5.0,
        ("typo", "one_keystroke"): 8.0, ("passport", "same"): 14.0, ("employer", "same"): 2.0,
    }
    resolver = IdentityResolver()
    assert (resolver.auto_threshold, resolver.review_threshold, resolver.max_block_size) == (
        0.99, 0.80, 200)


GOLDEN_RECORDS = [
    {"ref": "r1", "residence_id": "2398145710", "name_en": "Suresh Kumar Nair",
     "nationality": "IND", "date_of_birth": "1987-03-14", "sex": "M", "employer_id": "E1"},
    {"ref": "r2", "residence_id": "2398145711", "invalid_ids": "residence_id",
     "name_en": "Suresh Kumar Nayar", "nationality": "IND", "date_of_birth": "1987-03-14",
     "employer_id": "E1"},
    {"ref": "r3", "passport_number": "P1", "name_en": "Suresh Nair", "nationality": "IND",
     "date_of_birth": "1987-14-03", "sex": "F"},
    {"ref": "r4", "residence_id": "2517730046", "passport_number": "P1", "name_en": "S Kumar",
     "nationality": "NPL", "date_of_birth": "1987", "sex": "M"},
    {"ref": "r5", "name_ar": "سريش كومار نير", "date_of_birth": "1987-01-01",
     "nationality": "IND"},
    {"ref": "r6", "name_en": "Mohammed Ali", "date_of_birth": "1990-05-04",
     "nationality": "PAK"},
    {"ref": "r7", "name_en": "Muhammad Aly", "date_of_birth": "1990-04-05",
     "nationality": "PAK", "sex": "M"},
]
# Scores and explanations the resolver gave before comparisons became classes (checked
# then against the old per-pair code on a 20,000-worker world: identical links).
GOLDEN: dict[tuple[str, str], tuple[float, dict[str, float]]] = {
    ("r1", "r2"): (12.5, {"prior": -9.0, "name similar": 3.0, "birth date same": 7.0,
                          "nationality same": 1.5,
                          "identifier one keystroke apart (a typo)": 8.0,
                          "same employer": 2.0}),
    ("r1", "r3"): (-2.5, {"prior": -9.0, "name same": 9.0, "nationality same": 1.5,
                          "sex differs": -5.0, "name rare": 1.0}),
    ("r1", "r4"): (-35.7, {"prior": -9.0, "identifiers differ": -25.0, "name similar": 3.0,
                           "birth year same": 1.0, "nationality differs": -6.0,
                           "sex same": 0.3}),
    ("r1", "r5"): (-3.5, {"prior": -9.0, "name similar": 3.0, "birth year same": 1.0,
                          "nationality same": 1.5}),
    ("r3", "r4"): (-14.0, {"prior": -9.0, "name differs": -8.0, "nationality differs": -6.0,
                           "sex differs": -5.0, "passport same": 14.0}),
    ("r3", "r5"): (-8.5, {"prior": -9.0, "name weakly similar": -1.0,
                          "nationality same": 1.5}),
    ("r6", "r7"): (5.0, {"prior": -9.0, "name same": 9.0,
                         "birth date day/month swapped": 2.5, "nationality same": 1.5,
                         "name rare": 1.0}),
}


def test_the_default_scores_and_explains_pairs_as_it_always_did() -> None:
    resolver = IdentityResolver()
    prep = resolver.prepare(identity_frame(GOLDEN_RECORDS))
    index = {ref: k for k, ref in enumerate(prep.first_ref)}
    i = np.array([index[a] for a, _ in GOLDEN], dtype=np.int64)
    j = np.array([index[b] for _, b in GOLDEN], dtype=np.int64)
    levels = resolver.grade_pairs(prep.features, i, j)
    scores, tf = resolver.scores(prep.features, i, j, levels)
    for k, (pair, (score, weights)) in enumerate(GOLDEN.items()):
        explained = resolver.explain(levels[k], float(tf[k]))
        assert explained == weights, pair
        assert float(scores[k]) == pytest.approx(score, abs=1e-9), pair
        assert sum(explained.values()) == pytest.approx(float(scores[k]), abs=1e-9), pair


def test_only_the_typo_pair_links_among_the_golden_records() -> None:
    res = IdentityResolver().resolve(identity_frame(GOLDEN_RECORDS))
    assert res.person_of["r1"] == res.person_of["r2"]
    assert len(set(res.person_of.values())) == 6
    [link] = res.persons[res.person_of["r1"]].links
    assert link.weights == GOLDEN[("r1", "r2")][1]
    assert link.probability == pytest.approx(1 / (1 + 2 ** -12.5))


# -- another configuration: two clean files, addresses, weights from the data --------------


def two_files(n: int, seed: int) -> pd.DataFrame:
    """File a: n people; file b: a corrupted copy of most of them, plus strangers."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"

    def word(k: int) -> str:
        return "".join(rng.choice(letters) for _ in range(k))

    def typo(s: str) -> str:
        if len(s) < 3 or rng.random() < 0.6:
            return s
        k = rng.randrange(len(s) - 1)
        return s[:k] + s[k + 1] + s[k] + s[k + 2:]

    rows: list[dict[str, Any]] = []
    people = [{"given": word(6), "surname": word(7), "street": word(9),
               "postcode": str(rng.randrange(2000, 2400)), "born": str(rng.randrange(1940, 2000))}
              for _ in range(n)]
    for k, p in enumerate(people):
        rows.append({"ref": f"a:{k}", "file": "a", **p})
    for k, p in enumerate(people):
        if rng.random() < 0.8:
            copy = {c: typo(v) for c, v in p.items()}
            if rng.random() < 0.2:
                copy["given"] = None
            rows.append({"ref": f"b:{k}", "file": "b", **copy})
    for k in range(n // 5):
        rows.append({"ref": f"b:x{k}", "file": "b", "given": word(6), "surname": word(7),
                     "street": word(9), "postcode": str(rng.randrange(2000, 2400)),
                     "born": str(rng.randrange(1940, 2000))})
    return pd.DataFrame(rows)


def two_file_configuration() -> Configuration:
    return Configuration(
        comparisons=(StringSimilarity("given"), StringSimilarity("surname"),
                     StringSimilarity("street"), EditDistance("postcode"),
                     EditDistance("born")),
        blocking=(BlockOn(("surname",)), BlockOn(("street",)), BlockOn(("postcode",)),
                  BlockOn(("born",))),
        exclusive="file")


def test_a_two_file_link_learns_its_weights_and_links_one_to_one() -> None:
    records = two_files(400, seed=3)
    resolver = IdentityResolver(configuration=two_file_configuration())
    prep = resolver.prepare(records)
    fitted = estimate_prepared(resolver, prep, random_pairs=50_000)
    for name in ("given", "surname", "street", "postcode", "born"):
        assert fitted.table.weights[(name, "same")] > 2.0, name
        assert fitted.table.weights[(name, "differs")] < 0.0, name
    resolver.table = fitted.table
    i, j = resolver.candidate_pairs(prep)
    files = prep.sigs["file"].to_numpy()
    assert (files[i] != files[j]).all()  # never a pair within one file
    res = resolver.resolve_prepared(prep)
    links = set()
    for person in res.persons.values():
        assert sum(r.startswith("a:") for r in person.refs) <= 1
        assert sum(r.startswith("b:") for r in person.refs) <= 1
        links.update((a[2:], b[2:]) for a in person.refs if a.startswith("a:")
                     for b in person.refs if b.startswith("b:"))
    truth = {(r[2:], r[2:]) for r in records["ref"] if r.startswith("b:") and "x" not in r}
    assert len(links & truth) / len(truth) > 0.97
    assert len(links - truth) <= 2


def test_within_one_exclusive_file_even_identical_records_stay_apart() -> None:
    same = {"given": "ann", "surname": "lee", "street": "high st", "postcode": "2000",
            "born": "1970"}
    records = pd.DataFrame([{"ref": "a:1", "file": "a", **same},
                            {"ref": "a:2", "file": "a", **same},
                            {"ref": "b:1", "file": "b", **same}])
    table = WeightTable(prior=-5.0, weights={(c, "same"): 5.0 for c in
                                             ("given", "surname", "street", "postcode",
                                              "born")})
    res = IdentityResolver(weights=table, configuration=two_file_configuration()).resolve(
        records)
    assert res.person_of["a:1"] != res.person_of["a:2"]
    # the tie goes to the smaller record ref, as every tie does
    assert res.person_of["b:1"] == res.person_of["a:1"]


def test_the_index_resolves_another_configuration_like_a_full_run() -> None:
    records = two_files(200, seed=5)
    resolver = IdentityResolver(configuration=two_file_configuration())
    fitted = estimate_prepared(resolver, resolver.prepare(records), random_pairs=20_000)

    def fresh() -> PersonIndex:
        return PersonIndex(IdentityResolver(weights=fitted.table,
                                            configuration=two_file_configuration()))

    full = fresh()
    full.apply(records)
    incremental = fresh()
    delivered = records.sample(frac=0.1, random_state=1)
    incremental.apply(records.drop(index=delivered.index))
    touched = incremental.apply(delivered)
    assert incremental.partition() == full.partition()
    assert touched.stats["records"] < len(records)
