"""Row validation against the feed contract."""

from __future__ import annotations

import random
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.contract import (
    FEED_SPECS,
    ChunkValidator,
    FeedSpec,
    _invalid_flags,
    row_hash,
    validate_row,
)
from reconciler.errors import RowError
from reconciler.identity.identifiers import DEFAULT_PROFILE, IdentifierProfile

CONTRACT = {
    "contract_id": "C1", "employer_id": "7000000025", "residence_id": "2735590867",
    "passport_number": "P4410932", "nationality": "PHL", "name_en": "Maria Grace Dela Cruz",
    "date_of_birth": "1995-06-21", "start_date": "2026-08-03", "status": "ACTIVE",
    "basic_wage": "3500.00", "housing_allowance": "875.00",
    "updated_at": "2026-08-01T08:00:00Z",
}


def check(**changes: str) -> dict:
    return validate_row(FEED_SPECS["contracts"], {**CONTRACT, **changes}, DEFAULT_PROFILE).values


def reason(**changes: str) -> str:
    with pytest.raises(RowError) as info:
        check(**changes)
    return info.value.reason


def test_a_good_row_is_typed() -> None:
    values = check()
    assert values["start_date"] == date(2026, 8, 3)
    assert values["basic_wage"] == 3500.0
    assert values["invalid_ids"] is None


@pytest.mark.parametrize(("changes", "expected"), [
    ({"name_en": ""}, "name_en: required but empty"),
    ({"start_date": "2026-02-30"}, "start_date"),
    ({"basic_wage": "-10"}, "basic_wage: amount must not be negative"),
    ({"basic_wage": "ten"}, "basic_wage: expected a decimal amount"),
    ({"status": "RUNNING"}, "status: expected one of ACTIVE, TERMINATED, SUSPENDED"),
    ({"residence_id": "", "passport_number": ""}, "no identifier"),
    ({"updated_at": "2026-08-01T08:00:00"}, "has no time zone"),
    ({"employer_id": "12345"}, "employer_id: expected 10 digits starting with 7"),
    ({"end_date": "2026-01-01"}, "end_date: before start_date"),
])
def test_contract_breaches_are_rejected_with_the_field(changes: dict, expected: str) -> None:
    assert expected in reason(**changes)


def test_all_problems_of_a_row_are_reported_together() -> None:
    text = reason(name_en="", basic_wage="-1")
    assert "name_en" in text and "basic_wage" in text


def test_a_failed_check_digit_keeps_the_row_and_marks_the_identifier() -> None:
    values = check(residence_id="2735590868")
    assert values["residence_id"] == "2735590868"
    assert values["invalid_ids"] == "residence_id"


def test_birth_dates_accept_year_only_and_hijri() -> None:
    assert check(date_of_birth="1995")["date_of_birth"] == "1995"
    assert check(date_of_birth="H1407-07-14")["date_of_birth"] == "1987-03-14"


def test_unknown_columns_are_kept_as_source_attributes() -> None:
    row = validate_row(FEED_SPECS["contracts"], {**CONTRACT, "branch": "Riyadh"},
                       DEFAULT_PROFILE)
    assert row.extra == {"branch": "Riyadh"}


def test_payroll_key_is_employer_period_and_first_identifier() -> None:
    row = validate_row(FEED_SPECS["payroll"], {
        "employer_id": "7000000025", "period": "2026-10", "passport_number": "p4410932",
        "name_en": "Maria", "basic_wage": "3500"}, DEFAULT_PROFILE)
    assert row.key == "7000000025|2026-10|passport_number=P4410932"


# -- the chunk validator ingest runs: the same decisions as validate_row, row for row ----------

def test_the_row_hash_of_a_row_never_changes() -> None:
    # stored in source_records.row_hash and compared with later deliveries: a change would
    # make every re-delivered row look new
    row = validate_row(FEED_SPECS["contracts"], {**CONTRACT, "branch": "Riyadh"},
                       DEFAULT_PROFILE)
    assert row_hash(row) == "bf4ac78597ed339a27e72bb7f81bc98ca1e3e5d97d4284189c6d0521052e5c9c"


def _reference(spec: FeedSpec, raw: dict, profile: IdentifierProfile) -> tuple:
    try:
        row = validate_row(spec, raw, profile)
    except RowError as exc:
        return ("quarantined", exc.reason, exc.field)
    columns = [spec.column_map.get(c, c) for c in spec.columns] + ["invalid_ids"]
    return ("accepted", row.key, row.version, row_hash(row),
            tuple(row.values.get(c) for c in columns), row.extra)


def _chunked(spec: FeedSpec, raws: list[dict], profile: IdentifierProfile,
             size: int, validator: ChunkValidator | None = None) -> list[tuple]:
    validator = validator or ChunkValidator(spec, profile)
    out: list[tuple] = []
    for start in range(0, len(raws), size):
        chunk = validator.validate(raws[start:start + size])
        got: dict[int, tuple] = {i: ("quarantined", exc.reason, exc.field)
                                 for i, exc in chunk.rejected}
        for i, key, version, digest, values, extra in zip(
                chunk.index, chunk.keys, chunk.versions, chunk.hashes, chunk.values,
                chunk.extra, strict=True):
            assert i not in got
            got[i] = ("accepted", key, version, digest, values, extra)
        assert chunk.index == sorted(chunk.index)
        assert sorted(got) == list(range(len(raws[start:start + size])))
        out.extend(got[i] for i in sorted(got))
    return out


def _id(profile: IdentifierProfile, kind: str, rng: random.Random) -> str:
    prefix = profile.prefixes.get(kind, "1")[0]
    body = prefix + "".join(rng.choice("0123456789") for _ in range(profile.length - 2))
    return profile.make(kind, body)


def _good_row(feed: str, rng: random.Random, profile: IdentifierProfile) -> dict:
    """A valid row of ``feed`` with cells drawn from a small pool, so values repeat."""
    def day(lo: int = 2018, hi: int = 2026) -> str:
        return f"{rng.randint(lo, hi)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"

    person = {
        "national_id": _id(profile, "national_id", rng) if rng.random() < 0.3 else "",
        "residence_id": _id(profile, "residence_id", rng),
        "border_number": _id(profile, "border_number", rng) if rng.random() < 0.1 else "",
        "passport_number": rng.choice(["", f"P{rng.randint(100000, 999999)}"]),
        "nationality": rng.choice(["IND", "PAK", "PHL", "EGY", "SAU"]),
        "name_en": rng.choice(["Maria Grace Dela Cruz", "Suresh Kumar Nair", "Ali Hassan"]),
        "name_ar": rng.choice(["", "علي حسن"]),
        "date_of_birth": rng.choice([day(1960, 2004), str(rng.randint(1960, 2004)),
                                     "H1407-07-14"]),
        "sex": rng.choice(["M", "F", ""]),
        "occupation_code": rng.choice(["", "7411", "5131"]),
    }
    employer = f"7{rng.randint(0, 10**9 - 1):09d}"
    stamp = f"{day(2024)}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z"
    wage = f"{rng.randint(10, 200) * 50}.00"
    if feed == "contracts":
        return {"contract_id": f"C{rng.randint(1, 500)}", "employer_id": employer, **person,
                "start_date": day(2018, 2022), "end_date": rng.choice(["", day(2023)]),
                "status": rng.choice(["ACTIVE", "TERMINATED", "SUSPENDED"]),
                "basic_wage": wage, "housing_allowance": rng.choice(["", "875.00"]),
                "updated_at": stamp}
    if feed == "permits":
        return {**person, "sponsor_id": employer, "issue_date": day(), "expiry_date": day(),
                "status": rng.choice(["VALID", "EXPIRED", "CANCELLED", "FINAL_EXIT"]),
                "updated_at": stamp}
    if feed == "payroll":
        ids = {k: person[k] for k in ("national_id", "residence_id", "border_number",
                                      "passport_number")}
        return {"employer_id": employer, "period": f"2026-{rng.randint(1, 12):02d}", **ids,
                "name_en": person["name_en"], "basic_wage": wage,
                "housing_allowance": "500.00", "other_allowances": rng.choice(["", "0.00"]),
                "paid_on": day(2026)}
    if feed == "contributors":
        return {"contributor_id": f"K{rng.randint(1, 500)}", **person}
    if feed == "engagements":
        return {"engagement_id": f"G{rng.randint(1, 500)}", "contributor_id": "K1",
                "employer_id": employer, "start_date": day(2018, 2022),
                "end_date": rng.choice(["", day(2023)]), "status": rng.choice(["ACTIVE", "ENDED"]),
                "registered_on": day(), "contributory_wage": wage, "occupation_code": "7411"}
    return {"employer_id": employer, "name": "Golden Palm", "email": "hr@example.com",
            "webhook_url": rng.choice(["", "https://example.com/hook"])}


# Cells that break (or bend) the contract in every way the parsers know, and a few they do not
ODD_CELLS = [
    "", "   ", " ACTIVE ", "active", "RUNNING", "2026-02-30", "2026-13-01", "26-01-01",
    "2026/01/01", "2026-1-1", "1995", "1850", "H1407-07-14", "H1450-13-01", "h1400-01-01",
    "٢٠٢٦-٠١-٠١", "2099-01-01", "-5", "ten", "1,234.50", "nan", "inf", "1e400", " 3500 ",
    "2026-08-01T08:00:00", "2026-08-01T08:00:00+03:00", "2026-08-01 08:00:00Z",
    "0001-01-01T00:00:00+01:00", "2026-08-01T08:00:00.123456Z", "not a time", "2026-13",
    "2026-1", "7000000025", "700000002", "8000000025", "2398 1457 10", "2398-1457-10", "---",
    "p4410932", "2735590868", "1735590867", "27355", "٢٧٣٥٥٩٠٨٦٧", "AB-12", "india", "PK",
    "Pakistani", "UNA", "XXX", "D", "male", "ذكر", "X", "1", "2", "TERMINATED", "VALID",
    "ENDED", "Maria", "\udcff", "x\udc80y", "C1", "K1",
]


def _mutate(row: dict, spec: FeedSpec, rng: random.Random) -> dict:
    row = dict(row)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        roll = rng.random()
        column = rng.choice(list(spec.columns))
        if roll < 0.45:
            row[column] = rng.choice(ODD_CELLS)
        elif roll < 0.55:
            for kind in ("national_id", "residence_id", "border_number", "passport_number"):
                row[kind] = rng.choice(["", " ", "---"]) if kind in spec.columns else None
        elif roll < 0.62:
            row["end_date"], row["start_date"] = "2020-01-01", "2021-01-01"
        elif roll < 0.70:
            row[rng.choice(["branch", "note", "__private"])] = rng.choice(["", "x", "Riyadh"])
        elif roll < 0.75:
            row["__surplus__"] = "x,y"
        elif roll < 0.80:
            row.pop(column, None)
            row["__missing__"] = "1"
        elif roll < 0.85:
            row[column] = None  # a REST page's null
        elif roll < 0.90:
            row.pop(column, None)  # a column the delivery does not have
        elif roll < 0.95:
            row = dict(rng.sample(list(row.items()), len(row)))  # another key order
        else:
            row[column] = f"  {row.get(column) or ''}  "
    return row


PROFILES = [
    DEFAULT_PROFILE,
    IdentifierProfile(length=8, prefixes={"national_id": "1", "residence_id": "2",
                                          "border_number": "3"}),
    IdentifierProfile(check="none"),
]


@pytest.mark.parametrize("feed", sorted(FEED_SPECS))
@pytest.mark.parametrize("profile", PROFILES, ids=["default", "length8", "no-check"])
def test_the_chunk_validator_decides_every_row_as_validate_row(
        feed: str, profile: IdentifierProfile) -> None:
    spec = FEED_SPECS[feed]
    rng = random.Random(f"{feed}-{profile.length}-{profile.check}")
    raws = [_good_row(feed, rng, profile) for _ in range(3000)]
    raws = [_mutate(r, spec, rng) if rng.random() < 0.3 else r for r in raws]
    expected = [_reference(spec, raw, profile) for raw in raws]
    assert {e[0] for e in expected} == {"accepted", "quarantined"}
    for size in (1, 7, 500, 5000):
        assert _chunked(spec, raws, profile, size) == expected


@pytest.mark.parametrize("feed", ["contracts", "payroll"])
def test_uniform_chunks_and_a_small_cache_decide_alike(feed: str) -> None:
    # the one-pass read of a CSV-shaped chunk, and caches emptied as they fill
    spec = FEED_SPECS[feed]
    rng = random.Random(feed)
    raws = [_good_row(feed, rng, DEFAULT_PROFILE) for _ in range(2000)]
    raws[100] = {**raws[100], "basic_wage": "-1"}
    raws[200] = {**raws[200], "__surplus__": "x"}
    expected = [_reference(spec, raw, DEFAULT_PROFILE) for raw in raws]
    small = ChunkValidator(spec, DEFAULT_PROFILE)
    small.CACHE_LIMIT = 50
    assert _chunked(spec, raws, DEFAULT_PROFILE, 300, small) == expected
    assert _chunked(spec, raws, DEFAULT_PROFILE, 2000) == expected


@settings(max_examples=300, deadline=None)
@given(feed=st.sampled_from(sorted(FEED_SPECS)), data=st.data())
def test_the_chunk_validator_agrees_on_arbitrary_cells(feed: str, data: st.DataObject) -> None:
    spec = FEED_SPECS[feed]
    columns = [*spec.columns, "extra_column"]
    cell = st.one_of(st.none(), st.sampled_from(ODD_CELLS), st.text(max_size=12))
    pool = _good_row(feed, random.Random(data.draw(st.integers(0, 10**6))), DEFAULT_PROFILE)
    rows = data.draw(st.lists(st.fixed_dictionaries(
        {}, optional={c: st.one_of(cell, st.just(pool.get(c, ""))) for c in columns}),
        min_size=1, max_size=8))
    rows += [pool, dict(pool)]
    expected = [_reference(spec, raw, DEFAULT_PROFILE) for raw in rows]
    assert _chunked(spec, rows, DEFAULT_PROFILE, len(rows)) == expected


def test_the_vectorised_luhn_is_the_profiles_check() -> None:
    rng = random.Random(5)
    values: list[str | None] = [None, ""]
    for _ in range(5000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.choice([9, 10, 10, 10])))
        values.append(digits)
        values.append(DEFAULT_PROFILE.make("residence_id", "2" + digits[:8]))
    values += ["ABC1234567", "P4410932", "٢٧٣٥٥٩٠٨٦٧"]
    for profile in PROFILES:
        for kind in ("national_id", "residence_id", "border_number", "passport_number"):
            assert _invalid_flags(profile, kind, values) == [
                bool(v) and not profile.is_valid(kind, v) for v in values]


def test_a_timestamp_without_a_utc_instant_is_quarantined_not_a_crash() -> None:
    assert "out of range" in reason(updated_at="0001-01-01T00:00:00+01:00")


@pytest.mark.parametrize("feed", sorted(FEED_SPECS))
def test_a_declared_key_column_is_the_key(feed: str) -> None:
    # ChunkValidator reads the key off key_column instead of calling spec.key
    spec = FEED_SPECS[feed]
    if spec.key_column is None:
        return
    rng = random.Random(feed)
    for _ in range(200):
        values = validate_row(spec, _good_row(feed, rng, DEFAULT_PROFILE), DEFAULT_PROFILE)
        assert values.key == str(values.values[spec.column_map.get(spec.key_column,
                                                                   spec.key_column)])
