"""What every connector yields."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

RawRow = tuple[int, dict[str, str | None]]  # (line number in the source, column -> cell)


@dataclass(frozen=True)
class Delivery:
    """One unit of delivered data: a file, a page, a batch. ``content_hash`` identifies its
    content so the same delivery is never read twice; ``rows`` is consumed once.

    ``cursor``, when set, is the connector's position *after* this delivery; ingest stores it
    in the transaction that stages the rows, so the cursor never runs ahead of the rows.

    ``reader``, when set, is a picklable callable (a module-level function and its
    arguments, e.g. ``functools.partial(read_csv_rows, path)``) that yields the same rows
    as ``rows``, in another process; ``size`` is the delivery's size in bytes when known.
    Ingest reads a large delivery that has both through a second process
    (:mod:`reconciler.validation_worker`) and then never touches ``rows``.
    """

    source: str
    content_hash: str
    rows: Iterator[RawRow]
    cursor: str | None = None
    reader: Callable[[], Iterable[RawRow]] | None = None
    size: int | None = None


class Connector(Protocol):
    name: str
    feed: str

    def deliveries(self, already_seen: Callable[[str], bool]) -> Iterator[Delivery]:
        """Yield what is new; ``already_seen(content_hash)`` lets the connector skip work."""
        ...


@runtime_checkable
class IncrementalConnector(Protocol):
    """A connector that resumes from a stored cursor (REST, SQL).

    Ingest reads the connector's cursor from the ``cursors`` table and passes it in (the
    connector itself never touches the reconciler's database); every delivery carries the
    cursor after it. Errors are :mod:`reconciler.errors` kinds: a ``FatalError`` or an
    exhausted ``RetriableError`` ends this connector's pull, reported; committed deliveries
    (and their cursor) stay.
    """

    name: str
    feed: str

    def deliveries_from(self, cursor: str | None,
                        already_seen: Callable[[str], bool]) -> Iterator[Delivery]:
        """Yield what changed since ``cursor`` (``None``: from the declared start)."""
        ...


# -- incremental helpers shared by the REST and SQL connectors -----------------------------

CursorKey = str | int | float


def key_order(key: CursorKey) -> tuple[int, float, str]:
    """Numbers sort numerically and before text; text by code point (as partners sort)."""
    if isinstance(key, bool):  # bool is an int; keep it with the text it came as
        return (1, 0.0, str(key).lower())
    if isinstance(key, int | float):
        return (0, float(key), "")
    return (1, 0.0, key)


@dataclass(frozen=True)
class Cursor:
    """A position in a partner's change stream: the newest ``updated_at`` taken and, among the
    rows sharing it, the greatest tie-break key. Stored as JSON text in ``cursors.value``."""

    updated_at: datetime
    key: CursorKey

    def order(self) -> tuple[datetime, tuple[int, float, str]]:
        return (self.updated_at, key_order(self.key))

    def encode(self) -> str:
        return json.dumps({"updated_at": self.updated_at.astimezone(UTC).isoformat(),
                           "key": self.key}, sort_keys=True)

    @classmethod
    def decode(cls, text: str) -> Cursor:
        data = json.loads(text)
        return cls(datetime.fromisoformat(data["updated_at"]), data["key"])


def parse_timestamp(value: object) -> datetime | None:
    """An ISO 8601 timestamp with zone (or an aware datetime) in UTC; None when it is not one."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return moment.astimezone(UTC) if moment.tzinfo is not None else None


def dig(record: Mapping[str, Any], path: str) -> Any:
    """``record["a"]["b"]`` for the dotted path ``a.b``; None where a step is missing."""
    value: Any = record
    for step in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(step)
    return value


def cell(value: Any) -> str | None:
    """A source value as a contract cell: text as-is, numbers and dates in their usual text
    form, naive datetimes taken as UTC, nested values as JSON (ingest rejects what it must)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date | Decimal | int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


def map_row(record: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, str | None]:
    """The declaration's ``fields`` (contract column → source field) applied to one record;
    with no mapping, the record's own top-level fields."""
    if not fields:
        return {str(k): cell(v) for k, v in record.items()}
    return {column: cell(dig(record, source)) for column, source in fields.items()}


def rows_hash(rows: list[RawRow]) -> str:
    """The content of a page or batch: its mapped rows, so a re-fetched page is a no-op."""
    body = json.dumps([row for _, row in rows], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8", "surrogateescape")).hexdigest()
