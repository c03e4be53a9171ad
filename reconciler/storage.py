"""The schema (SQLAlchemy Core) and the engine factory.

One schema for SQLite and PostgreSQL, managed by Alembic (``reconciler/migrations``).
Each stage owns its tables:

* ingest — ``deliveries``, ``source_records`` (every version of every row), ``quarantine``,
  ``cursors``;
* registry (embedded gateway) — ``registrations`` (contributors and engagements it created);
* identity — ``person_records`` (which person each record belongs to);
* actions — ``findings``, ``finding_history``, ``audit_log``, ``outbox``, ``runs``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Dialect,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.types import TypeEngine

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BigInteger ids autoincrement on PostgreSQL; on SQLite only INTEGER PRIMARY KEY does.
Id = BigInteger().with_variant(Integer(), "sqlite")
Money = Float(asdecimal=False)
TZ = DateTime(timezone=True)

deliveries = Table(
    "deliveries", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("connector", String(64), nullable=False),
    Column("feed", String(32), nullable=False),
    Column("source", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("received_at", TZ, nullable=False),
    Column("rows_total", Integer, nullable=False, default=0),
    Column("rows_new", Integer, nullable=False, default=0),
    Column("rows_duplicate", Integer, nullable=False, default=0),
    Column("rows_superseded", Integer, nullable=False, default=0),
    Column("rows_quarantined", Integer, nullable=False, default=0),
    UniqueConstraint("feed", "content_hash"),
)

# Every contract column of every feed, typed; a row's columns that its feed does not have
# stay NULL. Unknown extra columns are kept in ``extra``.
source_records = Table(
    "source_records", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("feed", String(32), nullable=False),
    Column("record_key", String(200), nullable=False),
    Column("version", String(64), nullable=False),
    Column("row_hash", String(64), nullable=False),
    Column("is_current", Boolean, nullable=False),
    Column("delivery_id", ForeignKey("deliveries.id"), nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("employer_id", String(20)),
    Column("contributor_id", String(20)),
    Column("national_id", String(20)),
    Column("residence_id", String(20)),
    Column("border_number", String(20)),
    Column("passport_number", String(20)),
    Column("invalid_ids", String(80)),
    Column("nationality", String(3)),
    Column("name_en", Text),
    Column("name_ar", Text),
    Column("date_of_birth", String(10)),
    Column("sex", String(1)),
    Column("occupation_code", String(20)),
    Column("start_date", Date),
    Column("end_date", Date),
    Column("status", String(20)),
    Column("basic_wage", Money),
    Column("housing_allowance", Money),
    Column("other_allowances", Money),
    Column("contributory_wage", Money),
    Column("period", String(7)),
    Column("issue_date", Date),
    Column("expiry_date", Date),
    Column("paid_on", Date),
    Column("registered_on", Date),
    Column("updated_at", TZ),
    Column("name", Text),
    Column("email", Text),
    Column("webhook_url", Text),
    Column("extra", JSON),
    UniqueConstraint("feed", "record_key", "row_hash"),
    Index("ix_source_records_current", "feed", "is_current"),
)

quarantine = Table(
    "quarantine", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("delivery_id", ForeignKey("deliveries.id"), nullable=False),
    Column("feed", String(32), nullable=False),
    Column("source", Text, nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("field", String(64)),
    Column("reason", Text, nullable=False),
    Column("raw", JSON, nullable=False),
    Column("received_at", TZ, nullable=False),
    UniqueConstraint("delivery_id", "line_no"),
)

cursors = Table(
    "cursors", metadata,
    Column("connector", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", TZ, nullable=False),
)

registrations = Table(
    "registrations", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # contributor | engagement
    Column("record_id", String(20), nullable=False, unique=True),
    Column("payload", JSON, nullable=False),
    Column("finding_id", String(36)),
    Column("created_at", TZ, nullable=False),
)

person_records = Table(
    "person_records", metadata,
    Column("record_ref", String(240), primary_key=True),
    Column("person_id", String(16), nullable=False, index=True),
)

findings = Table(
    "findings", metadata,
    Column("finding_id", String(36), primary_key=True),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("rule", String(48), nullable=False),
    Column("rule_version", Integer, nullable=False),
    Column("person_id", String(16), nullable=False),
    Column("employer_id", String(20)),
    Column("severity", String(8), nullable=False),
    Column("status", String(16), nullable=False),
    Column("action", String(16), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("worker", JSON, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("details", JSON, nullable=False),
    Column("reasoning", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("first_seen", TZ, nullable=False),
    Column("last_seen", TZ, nullable=False),
    Column("last_seen_as_of", Date, nullable=False),
    Column("resolved_at", TZ),
    Column("resolution", String(32)),
    Index("ix_findings_rule_status", "rule", "status"),
)

finding_history = Table(
    "finding_history", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("finding_id", ForeignKey("findings.finding_id"), nullable=False, index=True),
    Column("at", TZ, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("from_status", String(16)),
    Column("to_status", String(16), nullable=False),
    Column("note", Text),
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", TZ, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(48), nullable=False),
    Column("subject", String(240)),
    Column("details", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
)

outbox = Table(
    "outbox", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("type", String(96), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("time", TZ, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("published_at", TZ),
    Column("attempts", Integer, nullable=False, default=0),
    Index("ix_outbox_pending", "published_at", "id"),
)

runs = Table(
    "runs", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("started_at", TZ, nullable=False),
    Column("finished_at", TZ),
    Column("as_of", Date, nullable=False),
    Column("status", String(16), nullable=False),
    Column("stats", JSON),
)

# The scheduler (``reconciler/lease.py``, ``reconciler/daemon.py``): the lease that makes one
# replica the leader, and a row per connector pull the leader ran (``reconciler status``).
scheduler_lease = Table(
    "scheduler_lease", metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(200), nullable=False),  # host:pid:uuid
    Column("epoch", BigInteger, nullable=False),  # the fencing token: +1 on every takeover
    Column("acquired_at", TZ, nullable=False),
    Column("renewed_at", TZ, nullable=False),
    Column("expires_at", TZ, nullable=False),
)

pull_runs = Table(
    "pull_runs", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("connector", String(64), nullable=False),
    Column("trigger", String(16), nullable=False),  # schedule | takeover
    Column("holder", String(200), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("started_at", TZ, nullable=False),
    Column("finished_at", TZ),
    Column("status", String(16), nullable=False),  # running | succeeded | failed
    Column("deliveries", Integer, nullable=False, default=0),
    Column("rows_new", Integer, nullable=False, default=0),
    Column("error", Text),
    Index("ix_pull_runs_connector_started_at", "connector", "started_at"),
)


def bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows with the same keys: :func:`insert_rows` for dictionaries."""
    if not rows:
        return
    columns = list(rows[0])
    insert_columns(conn, table, columns, [[row[c] for row in rows] for c in columns])


def insert_rows(conn: Connection, table: Table, columns: list[str],
                rows: list[tuple[Any, ...]] | list[list[Any]]) -> None:
    """Insert many rows given as sequences of values in ``columns`` order."""
    if rows:
        insert_columns(conn, table, columns, [list(c) for c in zip(*rows, strict=True)])


def insert_columns(conn: Connection, table: Table, columns: list[str],
                   values: list[list[Any]]) -> None:
    """Insert rows given column by column (``values[j]`` holds column ``columns[j]``), the
    fast way each database offers.

    PostgreSQL: ``COPY … FROM STDIN`` on the connection's own transaction. SQLite: one raw
    ``executemany`` with SQLAlchemy's own bind processors applied column by column, so
    values are stored exactly as a Core insert would store them — without its per-row
    parameter building, which costs more than the insert itself.
    """
    if not values or not values[0]:
        return
    names = ", ".join(columns)
    if conn.dialect.name == "postgresql":
        from psycopg.types.json import Json

        values = [[Json(v) if v is not None else None for v in cells]
                  if isinstance(table.c[c].type, JSON) else cells
                  for c, cells in zip(columns, values, strict=True)]
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in zip(*values, strict=True):
                copy.write_row(row)
        return
    # a column NULL in every row is left out (its value is NULL all the same), unless the
    # table gives it a default: feeds fill a dozen of the table's columns, not its 37
    kept = [j for j, (c, cells) in enumerate(zip(columns, values, strict=True))
            if _has_default(table.c[c]) or any(v is not None for v in cells)]
    if len(kept) < len(columns):
        columns, values = [columns[j] for j in kept], [values[j] for j in kept]
    processed = [_bind(table.c[c].type, conn.dialect, cells)
                 for c, cells in zip(columns, values, strict=True)]
    names = ", ".join(columns)
    marks = ", ".join("?" * len(columns))
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({marks})",
                         list(zip(*processed, strict=True)))


def _has_default(column: Column[Any]) -> bool:
    return column.default is not None or column.server_default is not None


def _bind(kind: TypeEngine[Any], dialect: Dialect, cells: list[Any]) -> list[Any]:
    """``kind``'s bind processor over a column of values (on SQLite, dates then go through
    the driver's own adapter here, once per distinct date, instead of once per row)."""
    process = kind.bind_processor(dialect)
    if process is None and type(kind) is Date and dialect.name == "sqlite":
        done = {v: _sqlite_adapted(v) for v in set(cells)}
        return list(map(done.__getitem__, cells))
    if process is None:
        return cells
    if type(kind) in (Date, Boolean):
        # few distinct values: process each once (not datetimes: equal instants in two
        # zones are equal keys but are stored as different text)
        done = {v: process(v) for v in set(cells)}
        return list(map(done.__getitem__, cells))
    if isinstance(kind, JSON):
        null = process(None)
        return [null if v is None else process(v) for v in cells]
    return list(map(process, cells))


def _sqlite_adapted(value: Any) -> Any:
    """What the sqlite3 driver would bind for ``value``: its registered adapter's result."""
    adapt = sqlite3.adapters.get((type(value), sqlite3.PrepareProtocol))
    return adapt(value) if adapt is not None else value


def _null(_: None) -> None:
    return None


# The sqlite3 driver binds int, float, str and bytes directly but looks None up through
# its adaptation protocol, which fails twice (``__conform__``, ``__adapt__``) before it
# binds NULL: 0.75 µs a None, two thirds of the time of inserting a staged row, whose
# columns are mostly empty. A registered adapter is found at the first lookup. The result
# is the same NULL.
sqlite3.register_adapter(type(None), _null)


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a parent folder that exists."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

    return engine


@contextmanager
def sqlite_cache(conn: Connection, mib: int) -> Iterator[None]:
    """A page cache of ``mib`` MiB on this SQLite connection while a bulk unit of work
    writes (SQLite's default is 2 MiB: inserting a million index entries then re-reads
    pages from the file all the time); no-op elsewhere."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql(f"PRAGMA cache_size = -{int(mib) * 1024}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size = {int(before or -2000)}")
