"""The feed contract (``shared/contracts/feeds.md``, v1) as data, and the row validator.

A feed is a declaration — its key, its version column, its columns and which are
required — so adding a feed is a new :class:`FeedSpec`, not a branch in the ingest loop.
:func:`validate_row` turns one raw CSV row into typed columns or raises :class:`RowError`
naming the field and what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from reconciler.errors import RowError
from reconciler.identity.identifiers import ALL_KINDS, IdentifierProfile, clean_identifier
from reconciler.identity.normalize import DateFormatError, parse_birth_date, parse_date

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_EMPLOYER = re.compile(r"^7\d{9}$")
_NATIONALITY = re.compile(r"^[A-Z]{3}$")
_SURROGATE = re.compile("[\udc80-\udcff]")


def _text(raw: str, name: str) -> str:
    return raw


def _date(raw: str, name: str) -> date:
    try:
        parsed = parse_date(raw)
    except DateFormatError as exc:
        raise RowError(f"{name}: {exc}", name) from None
    assert parsed is not None
    return parsed


def _birth_date(raw: str, name: str) -> str:
    try:
        parsed = parse_birth_date(raw)
    except DateFormatError as exc:
        raise RowError(f"{name}: {exc}", name) from None
    assert parsed is not None
    return parsed.iso()


def _money(raw: str, name: str) -> float:
    try:
        value = float(raw.replace(",", ""))
    except ValueError:
        raise RowError(f"{name}: expected a decimal amount, got {raw!r}", name) from None
    if value < 0 or value != value or value == float("inf"):
        raise RowError(f"{name}: amount must not be negative, got {raw!r}", name)
    return value


def _timestamp(raw: str, name: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise RowError(
            f"{name}: expected an ISO 8601 timestamp with zone, got {raw!r}", name
        ) from None
    if value.tzinfo is None:
        raise RowError(f"{name}: timestamp {raw!r} has no time zone (add Z or +03:00)", name)
    return value.astimezone(UTC)


def _period(raw: str, name: str) -> str:
    if not _PERIOD.match(raw):
        raise RowError(f"{name}: expected YYYY-MM, got {raw!r}", name)
    return raw


def _employer(raw: str, name: str) -> str:
    if not _EMPLOYER.match(raw):
        raise RowError(f"{name}: expected 10 digits starting with 7, got {raw!r}", name)
    return raw


def _nationality(raw: str, name: str) -> str:
    from reconciler.identity.normalize import normalize_nationality

    code = normalize_nationality(raw)
    if code is None or not _NATIONALITY.match(code):
        raise RowError(f"{name}: expected an ISO 3166-1 alpha-3 code, got {raw!r}", name)
    return code


def _sex(raw: str, name: str) -> str:
    from reconciler.identity.normalize import normalize_sex

    value = normalize_sex(raw)
    if value is None:
        raise RowError(f"{name}: expected M or F, got {raw!r}", name)
    return value


def _choice(*allowed: str) -> Callable[[str, str], str]:
    def parse(raw: str, name: str) -> str:
        value = raw.strip().upper()
        if value not in allowed:
            raise RowError(f"{name}: expected one of {', '.join(allowed)}, got {raw!r}", name)
        return value

    return parse


Parser = Callable[[str, str], Any]


@dataclass(frozen=True)
class FeedSpec:
    """One feed of the contract: columns with their parsers, which are required, the key."""

    name: str
    columns: Mapping[str, Parser]
    required: frozenset[str]
    key: Callable[[Mapping[str, Any]], str]
    version_column: str | None = None  # None: a later delivery supersedes an earlier one
    needs_identifier: bool = False
    column_map: Mapping[str, str] = field(default_factory=dict)  # contract name -> table column


IDENTIFIER_COLUMNS: dict[str, Parser] = dict.fromkeys(ALL_KINDS, _text)
PERSON_COLUMNS: dict[str, Parser] = {
    **IDENTIFIER_COLUMNS,
    "nationality": _nationality,
    "name_en": _text,
    "name_ar": _text,
    "date_of_birth": _birth_date,
    "sex": _sex,
    "occupation_code": _text,
}


def first_identifier(row: Mapping[str, Any]) -> str:
    """The worker part of a payroll key: the first identifier present, typed."""
    for kind in ALL_KINDS:
        if row.get(kind):
            return f"{kind}={row[kind]}"
    return ""


FEED_SPECS: dict[str, FeedSpec] = {
    "contracts": FeedSpec(
        name="contracts",
        columns={
            "contract_id": _text, "employer_id": _employer, **PERSON_COLUMNS,
            "start_date": _date, "end_date": _date,
            "status": _choice("ACTIVE", "TERMINATED", "SUSPENDED"),
            "basic_wage": _money, "housing_allowance": _money, "updated_at": _timestamp,
        },
        required=frozenset({"contract_id", "employer_id", "nationality", "name_en",
                            "date_of_birth", "start_date", "status", "basic_wage",
                            "updated_at"}),
        key=lambda r: str(r["contract_id"]),
        version_column="updated_at",
        needs_identifier=True,
    ),
    "permits": FeedSpec(
        name="permits",
        columns={
            **PERSON_COLUMNS, "sponsor_id": _employer, "issue_date": _date,
            "expiry_date": _date,
            "status": _choice("VALID", "EXPIRED", "CANCELLED", "FINAL_EXIT", "TRANSFERRED"),
            "updated_at": _timestamp,
        },
        required=frozenset({"residence_id", "nationality", "name_en", "date_of_birth",
                            "sponsor_id", "issue_date", "expiry_date", "status",
                            "updated_at"}),
        key=lambda r: str(r["residence_id"]),
        version_column="updated_at",
        needs_identifier=True,
        column_map={"sponsor_id": "employer_id"},
    ),
    "payroll": FeedSpec(
        name="payroll",
        columns={
            "employer_id": _employer, "period": _period, **IDENTIFIER_COLUMNS,
            "name_en": _text, "basic_wage": _money, "housing_allowance": _money,
            "other_allowances": _money, "paid_on": _date,
        },
        required=frozenset({"employer_id", "period", "name_en", "basic_wage"}),
        key=lambda r: f"{r['employer_id']}|{r['period']}|{first_identifier(r)}",
        needs_identifier=True,
    ),
    "contributors": FeedSpec(
        name="contributors",
        columns={"contributor_id": _text, **PERSON_COLUMNS},
        required=frozenset({"contributor_id"}),
        key=lambda r: str(r["contributor_id"]),
        needs_identifier=True,
    ),
    "engagements": FeedSpec(
        name="engagements",
        columns={
            "engagement_id": _text, "contributor_id": _text, "employer_id": _employer,
            "start_date": _date, "end_date": _date, "status": _choice("ACTIVE", "ENDED"),
            "registered_on": _date, "contributory_wage": _money, "occupation_code": _text,
        },
        required=frozenset({"engagement_id", "contributor_id", "employer_id", "start_date",
                            "status", "registered_on", "contributory_wage"}),
        key=lambda r: str(r["engagement_id"]),
    ),
    "employers": FeedSpec(
        name="employers",
        columns={"employer_id": _employer, "name": _text, "email": _text,
                 "webhook_url": _text},
        required=frozenset({"employer_id"}),
        key=lambda r: str(r["employer_id"]),
    ),
}


@dataclass(frozen=True)
class ValidRow:
    key: str
    version: str
    values: dict[str, Any]  # table column -> typed value
    extra: dict[str, str]


def validate_row(spec: FeedSpec, raw: Mapping[str, str | None],
                 profile: IdentifierProfile) -> ValidRow:
    """Check one raw row against its feed; typed values, or :class:`RowError` with the reason."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    first_field: str | None = None
    if "__surplus__" in raw:
        problems.append("row has more cells than the header (unquoted comma?)")
    if "__missing__" in raw:
        problems.append(f"row has {raw['__missing__']} cell(s) fewer than the header")
    if _SURROGATE.search("".join(v for v in raw.values() if isinstance(v, str))):
        problems.append("row is not valid UTF-8")
    for name, parse in spec.columns.items():
        cell = raw.get(name)
        cell = cell.strip() if isinstance(cell, str) else None
        if not cell:
            if name in spec.required:
                problems.append(f"{name}: required but empty")
                first_field = first_field or name
            continue
        if name in IDENTIFIER_COLUMNS:
            values[name] = clean_identifier(name, cell)
            continue
        try:
            values[name] = parse(cell, name)
        except RowError as exc:
            problems.append(exc.reason)
            first_field = first_field or exc.field
    if spec.needs_identifier and not any(values.get(k) for k in ALL_KINDS):
        problems.append("no identifier: a row must carry national_id, residence_id, "
                        "border_number or passport_number")
        first_field = first_field or "national_id"
    if (values.get("end_date") and values.get("start_date")
            and values["end_date"] < values["start_date"]):
        problems.append("end_date: before start_date")
        first_field = first_field or "end_date"
    if problems:
        raise RowError("; ".join(problems), first_field)
    invalid = [k for k in ALL_KINDS if values.get(k) and not profile.is_valid(k, values[k])]
    key = spec.key(values)
    version_value = values.get(spec.version_column) if spec.version_column else None
    version = version_value.isoformat() if isinstance(version_value, datetime) else ""
    columns = {spec.column_map.get(k, k): v for k, v in values.items()}
    columns["invalid_ids"] = ",".join(invalid) or None
    extra = {k: v for k, v in raw.items()
             if k not in spec.columns and not k.startswith("__") and v not in (None, "")}
    return ValidRow(key=key, version=version, values=columns, extra={
        str(k): str(v) for k, v in extra.items()})
