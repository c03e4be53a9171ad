"""Row validation against the feed contract."""

from __future__ import annotations

from datetime import date

import pytest

from reconciler.contract import FEED_SPECS, validate_row
from reconciler.errors import RowError
from reconciler.identity.identifiers import DEFAULT_PROFILE

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
