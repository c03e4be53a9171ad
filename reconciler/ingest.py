"""Ingest: validate deliveries against the contract and stage every version of every row.

Per delivery, in one transaction: the delivery record (which is also the file-drop
cursor: its content hash is never read again), the staged rows and the quarantined ones —
and, for an incremental connector (REST, SQL), its ``cursors`` row after that delivery.
A crash mid-delivery rolls all of it back, so a re-run starts that delivery afresh.

Versioning (contract, *A row delivered twice … supersedes*):

* same key and same content as any version already stored → no-op (``rows_duplicate``);
* same key, different content, newer version → stored as current, the old one kept as
  history (``is_current`` false);
* same key, different content, older version → kept as history only (``rows_superseded``).

Feeds without a version column (payroll, the registry, employers) treat the later
delivery as the newer version.

Rows go through a chunk at a time: :class:`~reconciler.contract.ChunkValidator` decides
them column by column, exactly as :func:`~reconciler.contract.validate_row` would, the
stored versions of the chunk's keys are read in one statement, and the new rows are
written in one bulk insert (``COPY`` on PostgreSQL).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, insert, select, update

from connectors.base import Connector, Delivery, IncrementalConnector
from reconciler.contract import FEED_SPECS, ChunkValidator, FeedSpec
from reconciler.errors import FatalError, ReconcilerError, RetriableError
from reconciler.identity.identifiers import IdentifierProfile
from reconciler.storage import (
    bulk_insert,
    cursors,
    deliveries,
    insert_rows,
    quarantine,
    source_records,
    sqlite_cache,
)
from reconciler.validation_worker import (
    WORKER_MIN_BYTES,
    Checked,
    ValidationWorker,
    check_rows,
)

log = logging.getLogger(__name__)

INGEST_CACHE_MIB = 256  # SQLite page cache while a delivery is staged (11 % faster)


@dataclass
class DeliveryStats:
    connector: str
    feed: str
    source: str
    rows_total: int = 0
    rows_new: int = 0
    rows_duplicate: int = 0
    rows_superseded: int = 0
    rows_quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    error: str | None = None  # the connector stopped here (message names the page / view)
    error_kind: str | None = None  # fatal | retriable | skippable


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Reading, validating and staging a delivery makes millions of short-lived dicts,
    tuples and lists and hardly a reference cycle: reference counting frees them, while the
    cyclic collector — which their allocation keeps triggering — would walk the chunk's
    rows again and again (a fifth of the ingest's time). The caller collects the youngest
    generation after each chunk, when its rows are gone, so cycles cannot pile up."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _current_versions(conn: Connection, feed: str,
                      keys: list[str]) -> dict[str, tuple[int, str, str]]:
    """key -> (id, row_hash, version) of the current stored version of each of ``keys``."""
    return {key: (rid, row_hash, version)
            for rid, key, row_hash, version in _versions_of(conn, feed, keys, current=True)}


def _stored_contents(conn: Connection, feed: str, keys: list[str]) -> set[tuple[str, str]]:
    """(key, row_hash) of every stored version, current or not, of each of ``keys``."""
    return {(key, row_hash) for _, key, row_hash, _ in _versions_of(conn, feed, keys)}


def _versions_of(conn: Connection, feed: str, keys: list[str],
                 current: bool = False) -> list[tuple[int, str, str, str]]:
    """(id, record_key, row_hash, version) of the stored versions of ``keys`` in one
    statement per chunk. On SQLite ``+is_current`` keeps the planner off
    ``ix_source_records_current`` (feed, is_current), which it prefers without statistics
    and which walks every current row of the feed — a quadratic ingest — so each key is
    found through the unique (feed, record_key, row_hash) index instead."""
    if not keys:
        return []
    columns = "SELECT id, record_key, row_hash, version FROM source_records"
    if conn.dialect.name == "postgresql":
        only = " AND is_current" if current else ""
        return [tuple(r) for r in conn.exec_driver_sql(
            f"{columns} WHERE feed = %s{only} AND record_key = ANY(%s)", (feed, keys))]
    if conn.dialect.name == "sqlite" and sqlite3.sqlite_version_info >= (3, 38):  # JSON1
        only = " AND +is_current = 1" if current else ""
        return [tuple(r) for r in conn.exec_driver_sql(
            f"{columns} WHERE feed = ?{only} "
            "AND record_key IN (SELECT value FROM json_each(?))", (feed, json.dumps(keys)))]
    table = source_records
    found: list[tuple[int, str, str, str]] = []
    for i in range(0, len(keys), 900):
        query = select(table.c.id, table.c.record_key, table.c.row_hash, table.c.version).where(
            table.c.feed == feed, table.c.record_key.in_(keys[i:i + 900]))
        if current:
            query = query.where(table.c.is_current)
        found.extend(tuple(r) for r in conn.execute(query))
    return found


def _newer(version: str, than: str) -> bool:
    # Versions are ISO timestamps in UTC (sortable as text); "" means "later delivery wins".
    return version >= than if version or than else True


def _quarantine_key(reason: str) -> str:
    return reason.split(":", 1)[0].split(";", 1)[0]


class Ingestor:
    """Stages deliveries of one feed; holds no state between deliveries."""

    def __init__(self, spec: FeedSpec, profile: IdentifierProfile) -> None:
        self.spec = spec
        self.profile = profile
        # executemany wants the same keys in every row; only this feed's columns, not all 37
        # (the key column itself, e.g. contract_id, is stored as record_key)
        columns = ChunkValidator(spec, profile).columns
        stored = [i for i, c in enumerate(columns) if c in source_records.c]
        self.insert_columns = [columns[i] for i in stored] + [
            "feed", "record_key", "version", "row_hash", "delivery_id", "line_no", "extra",
            "is_current"]
        self._stored: Callable[[tuple[Any, ...]], Any] = (
            itemgetter(*stored) if len(stored) > 1
            else (lambda values: tuple(values[i] for i in stored)))

    def ingest(self, conn: Connection, connector: str, delivery: Delivery, now: datetime,
               worker: ValidationWorker | None = None) -> DeliveryStats:
        """Stage ``delivery`` in ``conn``'s transaction; read and validated by ``worker``
        (another process) when the delivery can be read there and is large enough to be
        worth it (:mod:`reconciler.validation_worker`)."""
        stats = DeliveryStats(connector=connector, feed=self.spec.name, source=delivery.source)
        delivery_id = conn.execute(
            insert(deliveries).values(
                connector=connector, feed=self.spec.name, source=delivery.source,
                content_hash=delivery.content_hash, received_at=now,
            ).returning(deliveries.c.id)
        ).scalar_one()
        if worker is not None and delivery.reader is not None and (
                delivery.size or 0) >= WORKER_MIN_BYTES:
            chunks = worker.checked(delivery.reader, self.spec.name, self.profile)
        else:  # the validator's caches live one delivery
            chunks = check_rows(delivery.rows, ChunkValidator(self.spec, self.profile))
        with _cyclic_gc_paused():
            for checked in chunks:
                self._chunk(conn, delivery_id, delivery.source, checked, stats, now)
                del checked
                gc.collect(0)  # the chunk is gone; whatever cycles it made go too
        conn.execute(
            update(deliveries).where(deliveries.c.id == delivery_id).values(
                rows_total=stats.rows_total, rows_new=stats.rows_new,
                rows_duplicate=stats.rows_duplicate, rows_superseded=stats.rows_superseded,
                rows_quarantined=stats.rows_quarantined,
            )
        )
        return stats

    def _chunk(self, conn: Connection, delivery_id: int, source: str, checked: Checked,
               stats: DeliveryStats, now: datetime) -> None:
        feed = self.spec.name
        result, lines = checked.result, checked.lines
        stats.rows_total += len(lines)
        rejected: list[dict[str, Any]] = []
        for i, exc in result.rejected:
            line_no, raw = lines[i], checked.rejected_raws[i]
            stats.rows_quarantined += 1
            kind = _quarantine_key(exc.reason)
            stats.reasons[kind] = stats.reasons.get(kind, 0) + 1
            rejected.append({
                "delivery_id": delivery_id, "feed": feed, "source": source,
                "line_no": line_no, "field": exc.field, "reason": exc.reason,
                "raw": {str(k): _printable(v) for k, v in raw.items()},
                "received_at": now,
            })
        bulk_insert(conn, quarantine, rejected)
        if not result.index:
            return
        current = _current_versions(conn, feed, list(set(result.keys)))
        stored_keys = set(current)
        # Any stored key has exactly one current version, so only a key we hold with other
        # content can have a row's content among its older versions: read those at once.
        history = _stored_contents(conn, feed, list({
            key for key, row_hash in zip(result.keys, result.hashes, strict=True)
            if key in current and current[key][1] != row_hash}))
        pending: dict[tuple[str, str], list[Any]] = {}  # rows in self.insert_columns order
        retire: list[int] = []
        stored = self._stored
        new = duplicate = superseded = 0
        for i, key, version, row_hash, values, extra in zip(
                result.index, result.keys, result.versions, result.hashes, result.values,
                result.extra, strict=True):
            held = current.get(key)
            if (key, row_hash) in pending or (held is not None and held[1] == row_hash):
                duplicate += 1
                continue
            if key in stored_keys and (key, row_hash) in history:
                duplicate += 1
                continue
            record = [*stored(values), feed, key, version, row_hash, delivery_id, lines[i],
                      extra or None, True]
            if held is None or _newer(version, held[2]):
                if held is not None:
                    retire.append(held[0])
                    superseded += 1
                    previous = pending.get((key, held[1]))
                    if previous is not None:
                        previous[-1] = False  # is_current
                current[key] = (-1, row_hash, version)
                new += 1
            else:
                record[-1] = False
                superseded += 1
            pending[(key, row_hash)] = record
        stats.rows_new += new
        stats.rows_duplicate += duplicate
        stats.rows_superseded += superseded
        retire = [i for i in retire if i > 0]
        for i in range(0, len(retire), 900):
            conn.execute(update(source_records)
                         .where(source_records.c.id.in_(retire[i:i + 900]))
                         .values(is_current=False))
        insert_rows(conn, source_records, self.insert_columns, list(pending.values()))


def _printable(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value


def seen_hashes(conn: Connection, feed: str) -> set[str]:
    return set(conn.execute(
        select(deliveries.c.content_hash).where(deliveries.c.feed == feed)).scalars())


def read_cursor(conn: Connection, connector: str) -> str | None:
    return conn.execute(
        select(cursors.c.value).where(cursors.c.connector == connector)).scalar_one_or_none()


def save_cursor(conn: Connection, connector: str, value: str, now: datetime) -> None:
    """Upsert, in the caller's transaction (the one staging the rows the cursor covers)."""
    moved = conn.execute(update(cursors).where(cursors.c.connector == connector)
                         .values(value=value, updated_at=now)).rowcount
    if not moved:
        conn.execute(insert(cursors).values(connector=connector, value=value, updated_at=now))


def _kind(exc: ReconcilerError) -> str:
    return ("fatal" if isinstance(exc, FatalError) else
            "retriable" if isinstance(exc, RetriableError) else "skippable")


def pull_connector(
    begin: Callable[[], Any], connector: Connector | IncrementalConnector,
    profile: IdentifierProfile, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    worker: ValidationWorker | None = None,
) -> list[DeliveryStats]:
    """Pull every new delivery of ``connector``; each one commits on its own.

    ``begin`` opens a transaction (``engine.begin``). The set of delivered content hashes is
    read first; a delivery that another replica committed meanwhile fails its unique
    constraint and is rolled back, never half-applied.

    An incremental connector gets its stored cursor, and the cursor a delivery carries is
    saved in that delivery's transaction. An error the connector raises (fatal, retries
    exhausted, a malformed page) ends this connector's pull: what was committed stays, the
    error is logged and returned as a last entry with ``error`` set, and the caller goes
    on with the other connectors.

    ``worker``: a :class:`~reconciler.validation_worker.ValidationWorker` to read and
    validate large deliveries in (the caller owns and closes it).
    """
    spec = FEED_SPECS[connector.feed]
    ingestor = Ingestor(spec, profile)
    incremental = isinstance(connector, IncrementalConnector)
    with begin() as conn:
        seen = seen_hashes(conn, connector.feed)
        cursor = read_cursor(conn, connector.name) if incremental else None
    stream = (connector.deliveries_from(cursor, seen.__contains__)
              if isinstance(connector, IncrementalConnector)
              else connector.deliveries(seen.__contains__))
    results: list[DeliveryStats] = []
    try:
        _drain(stream, connector, ingestor, begin, clock, seen, results, worker)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:  # a generator left mid-way (ingest failed) frees its client
            close()
    return results


def _drain(stream: Iterator[Delivery], connector: Connector | IncrementalConnector,
           ingestor: Ingestor, begin: Callable[[], Any], clock: Callable[[], datetime],
           seen: set[str], results: list[DeliveryStats],
           worker: ValidationWorker | None) -> None:
    while True:
        try:
            delivery = next(stream, None)
        except ReconcilerError as exc:  # raised by the connector, between deliveries
            failed = DeliveryStats(connector=connector.name, feed=connector.feed,
                                   source=connector.name, error=str(exc),
                                   error_kind=_kind(exc))
            log.error("connector stopped", extra={"connector": connector.name,
                                                  "kind": failed.error_kind,
                                                  "error": failed.error})
            results.append(failed)
            break
        if delivery is None:
            break
        with begin() as conn, sqlite_cache(conn, INGEST_CACHE_MIB):
            now = clock()
            stats = ingestor.ingest(conn, connector.name, delivery, now, worker)
            if delivery.cursor is not None:
                save_cursor(conn, connector.name, delivery.cursor, now)
        seen.add(delivery.content_hash)
        log.info(
            "delivery staged", extra={"connector": connector.name, "source": delivery.source,
                                      "rows": stats.rows_total, "new": stats.rows_new,
                                      "duplicate": stats.rows_duplicate,
                                      "quarantined": stats.rows_quarantined})
        results.append(stats)


def summarize(stats: Iterable[DeliveryStats]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for s in stats:
        agg = out.setdefault(s.feed, {"deliveries": 0, "rows": 0, "new": 0, "duplicate": 0,
                                      "superseded": 0, "quarantined": 0})
        if s.error is not None:
            agg["connector_errors"] = agg.get("connector_errors", 0) + 1
            continue
        agg["deliveries"] += 1
        agg["rows"] += s.rows_total
        agg["new"] += s.rows_new
        agg["duplicate"] += s.rows_duplicate
        agg["superseded"] += s.rows_superseded
        agg["quarantined"] += s.rows_quarantined
    return out


@contextmanager
def validation_worker() -> Iterator[ValidationWorker | None]:
    """A :class:`ValidationWorker` for one pull when the machine has a second core (it
    only pays where reading and writing can run at once), else None; closed after."""
    if (os.cpu_count() or 1) < 2:
        yield None
        return
    with ValidationWorker() as worker:
        yield worker
