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
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, select, update

from connectors.base import Connector, Delivery, IncrementalConnector, RawRow
from reconciler.contract import FEED_SPECS, FeedSpec, ValidRow, validate_row
from reconciler.errors import FatalError, ReconcilerError, RetriableError, RowError
from reconciler.identity.identifiers import IdentifierProfile
from reconciler.storage import bulk_insert, cursors, deliveries, quarantine, source_records

log = logging.getLogger(__name__)

CHUNK = 5000


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


def _row_hash(row: ValidRow) -> str:
    """The content of a row: typed values (str, float, date, datetime — all with a stable
    ``repr``) in column order, plus the extra columns."""
    body = repr((row.key, sorted(row.values.items()), sorted(row.extra.items())))
    return hashlib.sha256(body.encode("utf-8", "surrogateescape")).hexdigest()


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
        self.empty: dict[str, Any] = dict.fromkeys(
            c for c in [spec.column_map.get(c, c) for c in spec.columns] + ["invalid_ids"]
            if c in source_records.c)

    def ingest(self, conn: Connection, connector: str, delivery: Delivery,
               now: datetime) -> DeliveryStats:
        stats = DeliveryStats(connector=connector, feed=self.spec.name, source=delivery.source)
        delivery_id = conn.execute(
            insert(deliveries).values(
                connector=connector, feed=self.spec.name, source=delivery.source,
                content_hash=delivery.content_hash, received_at=now,
            ).returning(deliveries.c.id)
        ).scalar_one()
        chunk: list[RawRow] = []
        for raw in delivery.rows:
            chunk.append(raw)
            if len(chunk) >= CHUNK:
                self._chunk(conn, delivery_id, delivery.source, chunk, stats, now)
                chunk = []
        if chunk:
            self._chunk(conn, delivery_id, delivery.source, chunk, stats, now)
        conn.execute(
            update(deliveries).where(deliveries.c.id == delivery_id).values(
                rows_total=stats.rows_total, rows_new=stats.rows_new,
                rows_duplicate=stats.rows_duplicate, rows_superseded=stats.rows_superseded,
                rows_quarantined=stats.rows_quarantined,
            )
        )
        return stats

    def _chunk(self, conn: Connection, delivery_id: int, source: str, chunk: list[RawRow],
               stats: DeliveryStats, now: datetime) -> None:
        feed = self.spec.name
        valid: list[tuple[int, ValidRow, str]] = []
        rejected: list[dict[str, Any]] = []
        for line_no, raw in chunk:
            stats.rows_total += 1
            try:
                row = validate_row(self.spec, raw, self.profile)
            except RowError as exc:
                stats.rows_quarantined += 1
                kind = _quarantine_key(exc.reason)
                stats.reasons[kind] = stats.reasons.get(kind, 0) + 1
                rejected.append({
                    "delivery_id": delivery_id, "feed": feed, "source": source,
                    "line_no": line_no, "field": exc.field, "reason": exc.reason,
                    "raw": {str(k): _printable(v) for k, v in raw.items()},
                    "received_at": now,
                })
                continue
            valid.append((line_no, row, _row_hash(row)))
        bulk_insert(conn, quarantine, rejected)
        if not valid:
            return
        keys = list({row.key for _, row, _ in valid})
        current: dict[str, tuple[int, str, str]] = {}
        for i in range(0, len(keys), 900):
            for rid, key, row_hash, version in conn.execute(
                select(source_records.c.id, source_records.c.record_key,
                       source_records.c.row_hash, source_records.c.version).where(
                    and_(source_records.c.feed == feed, source_records.c.is_current,
                         source_records.c.record_key.in_(keys[i:i + 900])))
            ):
                current[key] = (rid, row_hash, version)
        stored_keys = set(current)
        pending: dict[tuple[str, str], dict[str, Any]] = {}
        retire: list[int] = []
        for line_no, row, row_hash in valid:
            key = row.key
            if (key, row_hash) in pending or (key in current and current[key][1] == row_hash):
                stats.rows_duplicate += 1
                continue
            # Any stored key has exactly one current version, so only a key we hold with
            # other content can have this content among its older versions.
            if key in stored_keys and self._stored(conn, key, row_hash):
                stats.rows_duplicate += 1
                continue
            record = {
                **self.empty, **{k: v for k, v in row.values.items() if k in self.empty},
                "feed": feed, "record_key": key,
                "version": row.version, "row_hash": row_hash, "delivery_id": delivery_id,
                "line_no": line_no, "extra": row.extra or None,
            }
            held = current.get(key)
            if held is None or _newer(row.version, held[2]):
                if held is not None:
                    retire.append(held[0])
                    stats.rows_superseded += 1
                    previous = pending.get((key, held[1]))
                    if previous is not None:
                        previous["is_current"] = False
                record["is_current"] = True
                current[key] = (-1, row_hash, row.version)
                stats.rows_new += 1
            else:
                record["is_current"] = False
                stats.rows_superseded += 1
            pending[(key, row_hash)] = record
        retire = [i for i in retire if i > 0]
        for i in range(0, len(retire), 900):
            conn.execute(update(source_records)
                         .where(source_records.c.id.in_(retire[i:i + 900]))
                         .values(is_current=False))
        bulk_insert(conn, source_records, list(pending.values()))

    def _stored(self, conn: Connection, key: str, row_hash: str) -> bool:
        """Whether this exact content is already stored as an older version (rare path)."""
        return conn.execute(
            select(source_records.c.id).where(and_(
                source_records.c.feed == self.spec.name, source_records.c.record_key == key,
                source_records.c.row_hash == row_hash))
        ).first() is not None


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
        _drain(stream, connector, ingestor, begin, clock, seen, results)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:  # a generator left mid-way (ingest failed) frees its client
            close()
    return results


def _drain(stream: Iterator[Delivery], connector: Connector | IncrementalConnector,
           ingestor: Ingestor, begin: Callable[[], Any], clock: Callable[[], datetime],
           seen: set[str], results: list[DeliveryStats]) -> None:
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
        with begin() as conn:
            now = clock()
            stats = ingestor.ingest(conn, connector.name, delivery, now)
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
