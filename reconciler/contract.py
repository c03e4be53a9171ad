"""The feed contract (``shared/contracts/feeds.md``, v1) as data, and the row validator.

A feed is a declaration — its key, its version column, its columns and which are
required — so adding a feed is a new :class:`FeedSpec`, not a branch in the ingest loop.
:func:`validate_row` turns one raw CSV row into typed columns or raises :class:`RowError`
naming the field and what was expected; :func:`row_hash` is the content hash of a valid row.

:class:`ChunkValidator` is what ingest runs: the same decisions for a chunk of rows at once,
column by column — each distinct cell of a typed column is parsed once (by the very parsers
:func:`validate_row` uses), identifiers are checked with a vectorised Luhn, and the content
hash is assembled from cached fragments. A row it finds anything wrong with is handed to
:func:`validate_row`, so every quarantine reason is the reference's own;
``tests/unit/test_contract.py`` checks the two agree on generated rows, malformed ones
included.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import product
from operator import itemgetter
from typing import Any

import numpy as np

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
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 has no UTC instant
        raise RowError(f"{name}: timestamp {raw!r} is out of range", name) from None


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
    # when ``key`` is ``str(row[key_column])``: ChunkValidator then reads the key off that
    # column instead of calling ``key`` on a dict built for each row
    key_column: str | None = None


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
        key_column="contract_id",
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
        key_column="residence_id",
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
        key_column="contributor_id",
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
        key_column="engagement_id",
    ),
    "employers": FeedSpec(
        name="employers",
        columns={"employer_id": _employer, "name": _text, "email": _text,
                 "webhook_url": _text},
        required=frozenset({"employer_id"}),
        key=lambda r: str(r["employer_id"]),
        key_column="employer_id",
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


def row_hash(row: ValidRow) -> str:
    """The content of a valid row: its key, its typed values (str, float, date, datetime —
    all with a stable ``repr``) and its extra columns, both sorted by name. Stored as
    ``source_records.row_hash`` and compared with what later deliveries bring, so it must
    never change: :class:`ChunkValidator` builds the very same text."""
    body = repr((row.key, sorted(row.values.items()), sorted(row.extra.items())))
    return hashlib.sha256(body.encode("utf-8", "surrogateescape")).hexdigest()


class _ColumnCache:
    """What one column's distinct cells parse to. Plain dicts and sets, looked up with
    ``map`` over a whole column: no object is made per row."""

    __slots__ = ("bad", "empty", "fragments", "values")

    def __init__(self) -> None:
        self.values: dict[str | None, Any] = {}  # cell -> typed value (None: empty or bad)
        self.fragments: dict[str | None, str | None] = {}  # cell -> its row-hash text
        self.empty: set[str | None] = set()
        self.bad: set[str | None] = set()  # cells the column's parser rejects

    def add(self, cell: str | None, value: Any, fragment: str | None, bad: bool) -> None:
        self.values[cell] = value
        self.fragments[cell] = fragment
        if bad:
            self.bad.add(cell)
        elif fragment is None:
            self.empty.add(cell)

    def clear(self) -> None:
        for part in (self.values, self.fragments, self.empty, self.bad):
            part.clear()


@dataclass
class ValidChunk:
    """What :meth:`ChunkValidator.validate` decided. The accepted rows' lists are parallel
    and in input order; ``values`` follow :attr:`ChunkValidator.columns` (None where the row
    has no value)."""

    index: list[int]  # position in the chunk
    keys: list[str]
    versions: list[str]
    hashes: list[str]  # row_hash of each row
    values: list[tuple[Any, ...]]
    extra: list[dict[str, str]]
    rejected: list[tuple[int, RowError]]  # (position in the chunk, the reference's error)


def _invalid_flags(profile: IdentifierProfile, kind: str,
                   values: Sequence[str | None]) -> list[bool]:
    """``bool(value) and not profile.is_valid(kind, value)`` for every value; the Luhn check of
    the well-formed numeric identifiers runs vectorised for the default profile class."""
    flags = [False] * len(values)
    fast = (kind != "passport_number" and type(profile) is IdentifierProfile
            and profile.check == "luhn" and profile.length >= 2)
    width = profile.length
    numeric: list[int] = []
    for i, value in enumerate(values):
        if not value:
            continue
        if fast and len(value) == width and value.isascii() and value.isdigit():
            numeric.append(i)
        else:
            flags[i] = not profile.is_valid(kind, value)
    if numeric:
        text = "".join([values[i] or "" for i in numeric])
        digits = (np.frombuffer(text.encode("ascii"), dtype=np.uint8)
                  .reshape(len(numeric), width).astype(np.int64) - 48)
        doubled = (width - 1 - np.arange(width)) % 2 == 1  # every second from the check digit
        luhn = digits.copy()
        twice = luhn[:, doubled] * 2
        luhn[:, doubled] = twice - 9 * (twice > 9)
        allowed = np.zeros(10, dtype=bool)
        for ch in profile.prefixes.get(kind, "0123456789"):
            if "0" <= ch <= "9":
                allowed[ord(ch) - 48] = True
        good = (luhn.sum(axis=1) % 10 == 0) & allowed[digits[:, 0]]
        for i, ok in zip(numeric, good.tolist(), strict=True):
            flags[i] = not ok
    return flags


def _clean_identifier(name: str, cell: str) -> str | None:
    """:func:`clean_identifier`, without the regular expression for a plain alphanumeric."""
    if cell.isascii() and cell.isalnum():
        return cell.upper()
    return clean_identifier(name, cell)


def _pick(items: Sequence[Any], index: Sequence[int]) -> list[Any]:
    return [items[i] for i in index]


_UTC_SECONDS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def _versions(cells: Sequence[Any], values: Sequence[Any]) -> list[str]:
    """``value.isoformat()`` of each parsed version timestamp ("" for none); for the usual
    ``2026-08-01T08:00:13Z`` that is the text itself with ``+00:00`` for the ``Z``."""
    out: list[str] = []
    for cell, value in zip(cells, values, strict=True):
        if not isinstance(value, datetime):
            out.append("")
            continue
        text = cell.strip()
        out.append(text[:19] + "+00:00" if _UTC_SECONDS.fullmatch(text)
                   else value.isoformat())
    return out


class ChunkValidator:
    """:func:`validate_row` and :func:`row_hash` for a chunk of rows at once, column-wise.

    A typed column (dates, money, codes, birth dates) is parsed once per distinct cell, by
    the parser :func:`validate_row` uses; the outcome — typed value and its fragment of the
    row-hash text — is remembered for the following chunks (up to ``CACHE_LIMIT`` cells a
    column). Timestamps, identifiers and mostly-distinct text are worked out row by row in
    one comprehension; the Luhn check of a column of identifiers runs in numpy.
    A row with any problem (an empty required cell, a cell its parser rejects, no
    identifier, an end before the start, a surplus or missing cell, bytes that are not
    UTF-8) goes to :func:`validate_row` itself, which words the reason — or, should this
    class ever be stricter than the reference, accepts the row. One instance serves one
    delivery (birth dates are checked against today).
    """

    CACHE_LIMIT = 50_000

    def __init__(self, spec: FeedSpec, profile: IdentifierProfile) -> None:
        self.spec = spec
        self.profile = profile
        self.names = list(spec.columns)
        self.columns = [spec.column_map.get(c, c) for c in self.names] + ["invalid_ids"]
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(f"feed {spec.name}: two columns map to one table column")
        self._kinds = [k for k in ALL_KINDS if k in spec.columns]
        self._prefix = [f"({c!r}, " for c in self.columns]
        self._hash_order = sorted(range(len(self.columns)), key=self.columns.__getitem__)
        self._invalid: dict[tuple[bool, ...], tuple[str | None, str]] = {}
        for flags in product((False, True), repeat=len(self._kinds)):
            value = ",".join(k for k, f in zip(self._kinds, flags, strict=True) if f) or None
            self._invalid[flags] = (value, f"{self._prefix[-1]}{value!r})")
        self._caches = [_ColumnCache() for _ in self.names]
        version = spec.version_column
        self._version_at = (self.names.index(version) if version is not None
                            and version in spec.columns else None)
        self._key_at = (self.names.index(spec.key_column) if spec.key_column is not None
                        else None)

    def validate(self, raws: Sequence[Mapping[str, Any]]) -> ValidChunk:
        spec = self.spec
        n = len(raws)
        if not n:
            return ValidChunk([], [], [], [], [], [], [])
        suspect = {i for i, raw in enumerate(raws) if "__surplus__" in raw or "__missing__" in raw}
        grid = self._grid(raws, suspect)
        if _SURROGATE.search(self._text(raws, grid)):
            suspect.update(i for i, raw in enumerate(raws) if _SURROGATE.search(
                "".join(v for v in raw.values() if isinstance(v, str))))
        typed: list[Sequence[Any]] = []
        fragments: list[Sequence[str | None]] = []
        stamps: list[Any] = []
        for position, name in enumerate(self.names):
            cells = grid[name] if grid is not None else [raw.get(name) for raw in raws]
            try:
                values, frags = self._column(position, cells, suspect)
            except (AttributeError, TypeError):  # not text: validate_row reads it as empty
                cells = [c if isinstance(c, str) else None for c in cells]
                values, frags = self._column(position, cells, suspect)
            typed.append(values)
            fragments.append(frags)
            if position == self._version_at:
                stamps = cells
        by_name = dict(zip(self.names, typed, strict=True))
        ids = [by_name[k] for k in self._kinds]
        if spec.needs_identifier:
            if ids:
                suspect.update(i for i, t in enumerate(zip(*ids, strict=True)) if not any(t))
            else:
                suspect.update(range(n))
        if "end_date" in by_name and "start_date" in by_name:
            suspect.update(i for i, (e, s) in enumerate(zip(by_name["end_date"],
                                                            by_name["start_date"], strict=True))
                           if e and s and e < s)
        flags = [_invalid_flags(self.profile, k, v)
                 for k, v in zip(self._kinds, ids, strict=True)]
        invalid = ([self._invalid[t] for t in zip(*flags, strict=True)] if flags
                   else [self._invalid[()]] * n)
        typed.append([value for value, _ in invalid])
        fragments.append([frag for _, frag in invalid])

        rows = list(zip(*typed, strict=True))
        parts = list(zip(*[fragments[j] for j in self._hash_order], strict=True))
        versions = (_versions(stamps, typed[self._version_at]) if self._version_at is not None
                    else [""] * n)
        index: Sequence[int] = range(n)
        if suspect:
            index = [i for i in range(n) if i not in suspect]
            rows, parts, versions = _pick(rows, index), _pick(parts, index), _pick(versions, index)
        key, names, key_at = spec.key, self.names, self._key_at
        keys = ([str(row[key_at]) for row in rows] if key_at is not None
                else [key(dict(zip(names, row, strict=False))) for row in rows])
        if grid is not None:  # no row has a cell outside the contract
            extra: list[dict[str, str]] = [{}] * len(index)
        else:
            plain = set(spec.columns)
            extra = [self._extra(raws[i]) if not raws[i].keys() <= plain else {} for i in index]
        bodies = [f"({k!r}, [{', '.join(filter(None, p))}], [{self._extra_text(e)}])"
                  for k, p, e in zip(keys, parts, extra, strict=True)]
        hashes = [hashlib.sha256(b.encode("utf-8", "surrogateescape")).hexdigest()
                  for b in bodies]
        chunk = ValidChunk(list(index), keys, versions, hashes, rows, extra, [])
        if suspect:
            self._reference(raws, sorted(suspect), chunk)
        return chunk

    @staticmethod
    def _text(raws: Sequence[Mapping[str, Any]], grid: dict[str, list[Any]] | None) -> str:
        """All the text cells of the chunk's rows, but those of a row ``_grid`` found
        suspect, in one string (to look for bytes that were not UTF-8 at once); from the
        grid's columns when there is one — every cell of a sound row is in them."""
        if grid is not None:
            parts: list[str] = []
            for cells in {id(c): c for c in grid.values()}.values():
                try:
                    parts.append("".join(cells))
                except TypeError:  # an absent column, a row that is not sound
                    parts.append("".join([c for c in cells if isinstance(c, str)]))
            return "".join(parts)
        try:
            return "".join(["".join(raw.values()) for raw in raws])
        except TypeError:  # a cell that is not text (None from a REST page)
            return "".join([v for raw in raws for v in raw.values() if isinstance(v, str)])

    def _grid(self, raws: Sequence[Mapping[str, Any]],
              suspect: set[int]) -> dict[str, list[Any]] | None:
        """Every contract column's cells in one pass over the rows (not one per column), when
        the rows have the first sound row's keys, all of them contract columns (a CSV
        delivery); else None, and the caller reads each column from each row. A row of
        another width is added to ``suspect`` (the reference reads it)."""
        first = next((raw for i, raw in enumerate(raws) if i not in suspect), None)
        shape = tuple(first) if first is not None else ()
        if len(shape) < 2 or any(k not in self.spec.columns for k in shape):
            return None
        width = len(shape)
        suspect.update(i for i, raw in enumerate(raws) if len(raw) != width)
        getter = itemgetter(*shape)
        try:  # same size and every key of the first row: the same keys
            table = [getter(raw) if i not in suspect else tuple(map(raw.get, shape))
                     for i, raw in enumerate(raws)]
        except KeyError:
            return None
        grid = dict(zip(shape, map(list, zip(*table, strict=True)), strict=True))
        absent = [None] * len(raws)
        return {name: grid.get(name, absent) for name in self.names}

    def _column(self, position: int, cells: list[Any],
                suspect: set[int]) -> tuple[Sequence[Any], Sequence[str | None]]:
        """Typed values and row-hash fragments of one column; flags the rows it breaks."""
        name = self.names[position]
        required = name in self.spec.required
        if name in IDENTIFIER_COLUMNS:
            prefix = self._prefix[position]
            stripped = [c.strip() if c is not None else "" for c in cells]
            cleaned = [_clean_identifier(name, s) if s else None for s in stripped]
            if required and "" in stripped:
                suspect.update(i for i, s in enumerate(stripped) if not s)
            return cleaned, [f"{prefix}{v!r})" if s else None
                             for s, v in zip(stripped, cleaned, strict=True)]
        parse = self.spec.columns[name]
        if parse is _timestamp:  # a new instant on nearly every row: no cache
            return self._timestamps(position, cells, suspect)
        distinct = set(cells)
        if parse is _text and len(distinct) > len(cells) // 4:  # mostly distinct: no cache
            prefix = self._prefix[position]
            texts = [(c.strip() or None) if c is not None else None for c in cells]
            if required and None in texts:
                suspect.update(i for i, v in enumerate(texts) if v is None)
            return texts, [f"{prefix}{v!r})" if v is not None else None for v in texts]
        cache = self._caches[position]
        if len(cache.values) + len(distinct) > self.CACHE_LIMIT:
            cache.clear()
        for cell in [c for c in distinct if c not in cache.values]:
            cache.add(cell, *self._parse(position, parse, cell))
        wrong = distinct & cache.bad
        if required and not distinct.isdisjoint(cache.empty):
            wrong |= distinct & cache.empty
        if wrong:
            suspect.update(i for i, c in enumerate(cells) if c in wrong)
        return (list(map(cache.values.__getitem__, cells)),
                list(map(cache.fragments.__getitem__, cells)))

    def _timestamps(self, position: int, cells: list[Any],
                    suspect: set[int]) -> tuple[list[Any], list[str | None]]:
        name, prefix = self.names[position], self._prefix[position]
        required = name in self.spec.required
        values: list[Any] = []
        frags: list[str | None] = []
        for i, cell in enumerate(cells):
            text = cell.strip() if cell is not None else None
            if not text:
                if required:
                    suspect.add(i)
                values.append(None)
                frags.append(None)
                continue
            try:
                value = _timestamp(text, name)
            except RowError:
                suspect.add(i)
                values.append(None)
                frags.append(None)
                continue
            values.append(value)
            frags.append(f"{prefix}{value!r})")
        return values, frags

    def _parse(self, position: int, parse: Parser,
               cell: str | None) -> tuple[Any, str | None, bool]:
        """(typed value, row-hash fragment, whether the parser rejects it) of one cell."""
        text = cell.strip() if cell is not None else None
        if not text:
            return None, None, False
        try:
            value = parse(text, self.names[position])
        except RowError:
            return None, None, True
        return value, f"{self._prefix[position]}{value!r})", False

    def _extra(self, raw: Mapping[str, Any]) -> dict[str, str]:
        """The row's cells outside the contract, as :func:`validate_row` keeps them."""
        columns = self.spec.columns
        return {str(k): str(v) for k, v in raw.items()
                if k not in columns and not k.startswith("__") and v not in (None, "")}

    @staticmethod
    def _extra_text(extra: dict[str, str]) -> str:
        return ", ".join(f"({k!r}, {v!r})" for k, v in sorted(extra.items())) if extra else ""

    def _reference(self, raws: Sequence[Mapping[str, Any]], suspects: list[int],
                   chunk: ValidChunk) -> None:
        """The rows the fast path doubted, through :func:`validate_row`."""
        late: list[tuple[int, str, str, str, tuple[Any, ...], dict[str, str]]] = []
        for i in suspects:
            try:
                row = validate_row(self.spec, raws[i], self.profile)
            except RowError as exc:
                # without its traceback, whose frames would hold the whole chunk in a cycle
                chunk.rejected.append((i, exc.with_traceback(None)))
                continue
            late.append((i, row.key, row.version, row_hash(row),
                         tuple(row.values.get(c) for c in self.columns), row.extra))
        if not late:
            return
        merged = sorted([*zip(chunk.index, chunk.keys, chunk.versions, chunk.hashes,
                              chunk.values, chunk.extra, strict=True), *late],
                        key=lambda r: r[0])
        chunk.index, chunk.keys, chunk.versions, chunk.hashes, chunk.values, chunk.extra = (
            list(c) for c in zip(*merged, strict=True))
