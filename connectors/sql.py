"""The SQL connector: a partner's view read incrementally through SQLAlchemy, one batch =
one delivery.

``SELECT … FROM {view_schema}.{view} WHERE {cursor_field} >= :since ORDER BY {cursor_field},
{tie_break_field} LIMIT :page_size``, then keyset pagination after the last row of each
batch. Identifiers are quoted by SQLAlchemy, values bound, never pasted. The watermark is a
timestamp column; naive values are taken as UTC. Each batch carries the cursor after its last
row (see :mod:`connectors.rest` for the closed start, the boundary and the lag window — the
same rules, with the boundary pushed into the ``WHERE`` clause so it follows the database's
own ordering).

The partner's URL (with its password) is only ever in the environment variable named by
``url_env``. Operational errors (connection lost, timeouts, locks) are retried with backoff;
any other database error (no such view or column, permission denied) is fatal, reported.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Engine,
    Select,
    and_,
    column,
    create_engine,
    literal_column,
    or_,
    select,
    table,
)
from sqlalchemy.exc import (
    ArgumentError,
    DisconnectionError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from connectors.base import Cursor, Delivery, RawRow, map_row, rows_hash
from connectors.retry import RetryLater, RetryPolicy
from reconciler.config import ConnectorSettings
from reconciler.errors import FatalError


@dataclass
class SqlConnector:
    name: str
    feed: str
    url_env: str
    view: str
    cursor_field: str
    tie_break_field: str
    view_schema: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    lag: timedelta = timedelta(0)
    start: datetime | None = None
    page_size: int = 500
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def deliveries(self, already_seen: Callable[[str], bool]) -> Iterator[Delivery]:
        return self.deliveries_from(None, already_seen)

    def deliveries_from(self, cursor: str | None,
                        already_seen: Callable[[str], bool]) -> Iterator[Delivery]:
        url = self.env.get(self.url_env)
        if not url:
            raise FatalError(f"connector {self.name}: the environment variable {self.url_env} "
                             "(named by url_env) is not set")
        try:
            engine = create_engine(url, pool_pre_ping=True)
        except (ArgumentError, NoSuchModuleError) as exc:
            raise FatalError(f"connector {self.name}: {self.url_env} is not a usable "
                             f"SQLAlchemy URL ({exc})") from None
        try:
            yield from self._batches(engine, Cursor.decode(cursor) if cursor else None,
                                     already_seen)
        finally:
            engine.dispose()

    def _batches(self, engine: Engine, stored: Cursor | None,
                 already_seen: Callable[[str], bool]) -> Iterator[Delivery]:
        source_columns = sorted({*self.fields.values(), self.cursor_field,
                                 self.tie_break_field}) if self.fields else []
        view = table(self.view, column(self.cursor_field, DateTime(timezone=True)),
                     column(self.tie_break_field), schema=self.view_schema)
        watermark, key = view.c[self.cursor_field], view.c[self.tie_break_field]
        base: Select[Any] = select(*(
            [literal_column("*")] if not source_columns else
            [view.c[name] if name == self.cursor_field else column(name)
             for name in source_columns])).select_from(view).order_by(
                watermark, key).limit(self.page_size)
        position = stored
        condition: ColumnElement[bool] | None
        if stored is not None and not self.lag:
            condition = _after(watermark, key, stored)  # the closed start's boundary
        elif stored is not None:
            condition = watermark >= stored.updated_at - self.lag
        elif self.start is not None:
            condition = watermark >= self.start
        else:
            condition = None
        label = f"{self.view_schema + '.' if self.view_schema else ''}{self.view}"
        while True:
            query = base if condition is None else base.where(condition)
            records = self.retry.call(lambda q=query: self._fetch(engine, q, label))  # type: ignore[misc]
            if not records:
                return
            rows: list[RawRow] = []
            last: Cursor | None = None
            for line_no, record in enumerate(records, start=1):
                moment = _utc(record.get(self.cursor_field))
                if moment is None:
                    raise FatalError(f"{label}: row {record.get(self.tie_break_field)!r} has no "
                                     f"timestamp in {self.cursor_field}; the watermark column "
                                     "must be a non-null timestamp")
                record[self.cursor_field] = moment  # the driver's form of it, in UTC with zone
                last = Cursor(moment, record[self.tie_break_field])
                rows.append((line_no, map_row(record, self.fields)))
            assert last is not None
            if position is None or last.order() > position.order():
                position = last
            content_hash = rows_hash(rows)
            if not already_seen(content_hash):
                yield Delivery(source=f"sql:{label}?after={last.encode()}",
                               content_hash=content_hash, rows=iter(rows),
                               cursor=position.encode())
            if len(records) < self.page_size:
                return
            condition = _after(watermark, key, last)

    def _fetch(self, engine: Engine, query: Select[Any], label: str
               ) -> list[dict[str, Any]]:
        try:
            with engine.connect() as conn:
                return [dict(r) for r in conn.execute(query).mappings()]
        except (OperationalError, DisconnectionError, PoolTimeout) as exc:
            raise RetryLater(f"{label}: {type(exc).__name__}: {exc.args[0]!s:.300}") from exc
        except SQLAlchemyError as exc:
            raise FatalError(f"connector {self.name}: {label}: {type(exc).__name__}: "
                             f"{exc.args[0]!s:.300}; check view, view_schema and the fields "
                             "in the declaration") from exc


def _after(watermark: ColumnElement[Any], key: ColumnElement[Any],
           cursor: Cursor) -> ColumnElement[bool]:
    at = cursor.updated_at
    return or_(watermark > at, and_(watermark == at, key > cursor.key))


def _utc(value: Any) -> datetime | None:
    """The watermark as an aware UTC datetime; drivers without a timestamp type (SQLite)
    give text, and a value without zone is taken as UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def build_sql(declared: ConnectorSettings, env: Mapping[str, str] | None = None,
              sleep: Callable[[float], None] | None = None) -> SqlConnector:
    """The connector a ``type: sql`` declaration describes."""
    assert declared.url_env and declared.view
    assert declared.cursor_field and declared.tie_break_field
    policy = RetryPolicy(max_attempts=declared.max_attempts,
                         backoff_seconds=declared.backoff_seconds,
                         max_backoff_seconds=declared.max_backoff_seconds,
                         sleep=sleep or time.sleep)
    return SqlConnector(
        name=declared.name, feed=declared.feed, url_env=declared.url_env, view=declared.view,
        view_schema=declared.view_schema, cursor_field=declared.cursor_field,
        tie_break_field=declared.tie_break_field, fields=dict(declared.fields),
        lag=timedelta(seconds=declared.lag_seconds), start=declared.start,
        page_size=declared.page_size, retry=policy,
        env=os.environ if env is None else env,
    )
