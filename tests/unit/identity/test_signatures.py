"""The resolver's array layer: tables, signatures, identifier clusters, candidate pairs, the
naming of persons — each against a plain-Python reading of what it must compute."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.identity.comparisons import block_pairs
from reconciler.identity.normalize import name_tokens, name_tokens_many
from reconciler.identity.resolve import (
    IdentityResolver,
    identity_frame,
    mint_person_id,
    name_persons,
)
from reconciler.identity.signatures import (
    Table,
    Tables,
    group_records,
    id_clusters,
    object_array,
)


def test_a_table_codes_values_and_missing_cells_alike_wherever_it_meets_them() -> None:
    table = Table()
    first = table.encode(["b", None, "a", "b", float("nan"), "", 7])
    assert first.tolist() == [0, -1, 1, 0, -1, -1, 2]
    assert table.values == ["b", "a", "7"]
    again = table.encode(["a", "c", "7", None])  # the codes of a later delivery agree
    assert again.tolist() == [1, 3, 2, -1]
    assert table.encode(["a", "zz"], add=False).tolist() == [1, -2]
    assert table.lookup(["c", "nope"]).tolist() == [3, -1]
    assert table.lookup([f"x{k}" for k in range(40)] + ["b"]).tolist() == [-1] * 40 + [0]


def test_records_collapse_into_signatures_with_their_employers_and_first_ref() -> None:
    rows = [
        {"ref": "payroll:3", "name_en": "A", "employer_id": "E2"},
        {"ref": "contracts:1", "name_en": "B", "employer_id": "E1"},
        {"ref": "payroll:1", "name_en": "A", "employer_id": "E1"},
        {"ref": "payroll:2", "name_en": "A", "employer_id": "E1"},
        {"ref": "permits:9", "name_en": "A", "residence_id": "2398145710"},
    ]
    frame = identity_frame(rows)
    sigs, of_record, refs, _ = group_records(frame, ["name_en", "residence_id"], Tables())
    assert of_record.tolist() == [0, 1, 0, 0, 2]
    assert sigs.first_ref.tolist() == ["payroll:1", "contracts:1", "permits:9"]
    employers = sigs.tables.column("employer_id").values
    listed = [sorted(employers[e] for e in sigs.employer_code[sigs.employer_ptr[s]:
                                                             sigs.employer_ptr[s + 1]])
              for s in range(sigs.n)]
    assert listed == [["E1", "E2"], ["E1"], []]
    assert refs.tolist() == frame["ref"].tolist()


def test_identifier_clusters_refuse_a_second_identifier_of_a_kind_whatever_the_order() -> None:
    # 0 and 1 share a residence ID but hold two national IDs: the first ref's one wins
    valid = np.array([[5, 7, -1], [6, 7, -1], [-1, 7, -1], [-1, -1, 3], [5, -1, 3]])
    refs = object_array(["b", "a", "c", "d", "e"])
    labels = id_clusters(valid, refs)
    assert labels[1] == labels[2] and labels[0] != labels[1]
    assert labels[0] == labels[3] == labels[4]
    for order in itertools.permutations(range(5)):
        index = np.array(order)
        relabelled = id_clusters(valid[index], refs[index])
        groups = {frozenset(int(index[k]) for k in np.flatnonzero(relabelled == x))
                  for x in relabelled}
        assert groups == {frozenset({1, 2}), frozenset({0, 3, 4})}


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_block_candidates_are_every_block_pair_worth_scoring(seed: int) -> None:
    rnd = random.Random(seed)
    names = ["Ali Khan", "Ali Kahn", "Omar Said", "Mohammed Ali", None]
    rows = []
    for k in range(rnd.randint(2, 40)):
        rows.append({
            "ref": f"r{k:03d}", "name_en": rnd.choice(names),
            "national_id": rnd.choice([None, None, "1000000001", "1000000019"]),
            "residence_id": rnd.choice([None, "2000000007", "2000000015", "2000000023"]),
            "passport_number": rnd.choice([None, None, "P1", "P2"]),
            "date_of_birth": rnd.choice([None, "1990-01-01", "1990-05-04", "1991"]),
            "nationality": rnd.choice([None, "PAK", "IND"]),
            "employer_id": rnd.choice([None, "E1", "E2"]),
        })
    resolver = IdentityResolver(max_block_size=rnd.randint(2, 12))
    prep = resolver.prepare(identity_frame(rows))
    f, n = prep.features, prep.sigs.n
    sig, keys = resolver.blocking_keys(f)
    every = np.unique(block_pairs(sig, keys, resolver.max_block_size, n))
    wanted = set(every[resolver.worth_scoring(f, every // n, every % n, prep.labels)].tolist())
    listed = set(np.concatenate([np.empty(0, dtype=np.int64),
                                 *resolver.block_candidates(prep)]).tolist())
    assert wanted <= listed <= set(every.tolist())


def test_a_person_keeps_the_id_most_of_its_records_had_and_a_new_one_never_takes_a_used_id(
        ) -> None:
    refs = object_array(["a1", "a2", "a3", "b1", "c1"])
    root = np.array([0, 0, 0, 1, 2])
    # b1 was part of the person whose id is mint("b1"); that person (now a1-a3) keeps it,
    # so b1's own new id cannot be mint("b1")
    previous = object_array([mint_person_id("b1")] * 4 + [None])
    roots, ids, _, _, _ = name_persons(root, refs, previous)
    named = dict(zip(roots.tolist(), ids.tolist(), strict=True))
    assert named[0] == mint_person_id("b1")
    assert named[1] == mint_person_id("b1#2")
    assert named[2] == mint_person_id("c1")
    held = {mint_person_id("c1")}  # an id a person not being named holds
    _, ids, _, _, _ = name_persons(root, refs, previous, held)
    assert mint_person_id("c1") not in ids.tolist()


def test_resolution_does_not_depend_on_the_order_of_the_records() -> None:
    rnd = random.Random(3)
    rows = []
    for person in range(60):
        name = rnd.choice(["Ali Khan", "Omar Said", "Maria Cruz", "Suresh Nair"])
        rid = f"2{person:09d}"
        for k in range(rnd.randint(1, 4)):
            rows.append({"ref": f"r{person:03d}-{k}", "name_en": name,
                         "residence_id": rid if rnd.random() < 0.7 else None,
                         "date_of_birth": f"19{70 + person % 20}-0{1 + person % 9}-1{k}",
                         "nationality": "PAK", "employer_id": f"E{person % 7}"})
    frame = identity_frame(rows)

    def persons(order: list[int]) -> dict[str, tuple[str, ...]]:
        res = IdentityResolver().resolve(frame.iloc[order].reset_index(drop=True))
        return {pid: tuple(res.persons[pid].refs) for pid in res.persons}

    order = list(range(len(frame)))
    expected = persons(order)
    for _ in range(3):
        rnd.shuffle(order)
        assert persons(order) == expected


@pytest.mark.parametrize("names", [[
    "Mohammed Ali", "MOHAMMED ALI", "Abd al-Rahman bin Saleh", "Nur ul Islam", "De La Cruz",
    "Mr. Ali Khan", "al", "bin", "Ṣalāḥ al-Dīn", "Li Bin", "", "x\ny", "O'Neil  Jr.",
    "Abu Bakr Al-Siddiq", "Habib-ur-Rahman", "Md. Hossain Uddin", "ash-shammari",
]])
def test_many_names_tokenise_as_one_by_one(names: list[str]) -> None:
    assert name_tokens_many(names) == [name_tokens(n) for n in names]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="abdlrsuin -'.ABDLMRS", max_size=30), max_size=20))
def test_many_names_tokenise_as_one_by_one_whatever_the_text(names: list[str]) -> None:
    assert name_tokens_many(names) == [name_tokens(n) for n in names]


def test_the_grouping_matches_a_plain_groupby() -> None:
    rnd = random.Random(9)
    frame = pd.DataFrame([{"ref": f"r{k}", "name_en": rnd.choice(["A", "B", None]),
                           "sex": rnd.choice(["M", "F", None]),
                           "nationality": rnd.choice(["PAK", None])} for k in range(200)])
    sigs, of_record, _, _ = group_records(frame, ["name_en", "sex", "nationality"], Tables())
    expected: dict[tuple[object, ...], set[int]] = defaultdict(set)
    for k, row in enumerate(frame.itertuples()):
        expected[(row.name_en, row.sex, row.nationality)].add(k)
    got: dict[int, set[int]] = defaultdict(set)
    for k, s in enumerate(of_record.tolist()):
        got[s].add(k)
    assert sorted(map(sorted, got.values())) == sorted(map(sorted, expected.values()))
    assert sigs.n == len(expected)
