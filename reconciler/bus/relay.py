"""The outbox relay: pending ``outbox`` rows → Kafka, marked published only once acknowledged.

Guarantees (``docs/events.md``): at-least-once. A batch is read, sent by an idempotent
producer with ``acks=all``, flushed, and only the rows whose send the broker acknowledged
are marked published — in the transaction that read them. A crash between send and mark
leaves the rows pending, so the next pass sends them again (consumers dedupe on
``ce_source`` + ``ce_id``). A broker that cannot be reached raises
:class:`~reconciler.errors.RetriableError`; the rows stay pending and the caller backs off.

On PostgreSQL the batch is read ``FOR UPDATE SKIP LOCKED`` so two replicas relaying at once
never send the same rows; SQLite has a single writer anyway.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, func, select, update

from reconciler.bus.cloudevents import to_message
from reconciler.config import BusSettings
from reconciler.errors import FatalError, RetriableError
from reconciler.storage import outbox

log = logging.getLogger(__name__)

ProducerFactory = Callable[..., Any]


@dataclass
class RelayResult:
    published: int = 0
    pending: int = 0
    error: str | None = None


@dataclass
class OutboxStatus:
    pending: int
    published: int
    oldest_pending_at: datetime | None
    oldest_pending_age_seconds: float | None
    max_attempts: int

    def as_dict(self) -> dict[str, Any]:
        return {"pending": self.pending, "published": self.published,
                "oldest_pending_at": self.oldest_pending_at.isoformat()
                if self.oldest_pending_at else None,
                "oldest_pending_age_seconds": self.oldest_pending_age_seconds,
                "max_attempts": self.max_attempts}


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def outbox_status(conn: Connection, now: datetime | None = None) -> OutboxStatus:
    """Backlog, the age of the oldest pending event, and the most attempts any has had."""
    now = now or datetime.now(UTC)
    pending = outbox.c.published_at.is_(None)
    count, oldest, attempts = conn.execute(
        select(func.count(), func.min(outbox.c.time), func.max(outbox.c.attempts))
        .where(pending)).one()
    published = conn.execute(select(func.count()).select_from(outbox)
                             .where(outbox.c.published_at.is_not(None))).scalar_one()
    oldest_at = _utc(oldest) if oldest is not None else None
    age = round((now - oldest_at).total_seconds(), 3) if oldest_at else None
    return OutboxStatus(int(count), int(published), oldest_at, age, int(attempts or 0))


def producer_config(bootstrap: str, bus: BusSettings,
                    env: Mapping[str, str]) -> dict[str, Any]:
    """kafka-python settings: idempotent, ``acks=all``, bounded waits, TLS/SASL passed on."""
    timeout_ms = int(bus.send_timeout_seconds * 1000)
    config: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in bootstrap.split(",") if s.strip()],
        "client_id": bus.client_id,
        "acks": "all",
        "enable_idempotence": True,
        "max_in_flight_requests_per_connection": 5,  # the idempotent maximum keeps order
        "linger_ms": 5,
        "max_block_ms": timeout_ms,
        "bootstrap_timeout_ms": timeout_ms,
        "request_timeout_ms": max(1000, timeout_ms // 2),
        "delivery_timeout_ms": timeout_ms,
        "reconnect_backoff_max_ms": 2000,
        "security_protocol": bus.security_protocol,
    }
    if bus.security_protocol in ("SSL", "SASL_SSL"):
        config.update(ssl_check_hostname=bus.ssl_check_hostname,
                      ssl_cafile=str(bus.ssl_cafile) if bus.ssl_cafile else None,
                      ssl_certfile=str(bus.ssl_certfile) if bus.ssl_certfile else None,
                      ssl_keyfile=str(bus.ssl_keyfile) if bus.ssl_keyfile else None)
    if bus.security_protocol.startswith("SASL"):
        password = env.get(bus.sasl_password_env)
        if not password:
            raise FatalError(f"SASL is configured but {bus.sasl_password_env} is not set: "
                             "put the Kafka password in that environment variable")
        config.update(sasl_mechanism=bus.sasl_mechanism,
                      sasl_plain_username=bus.sasl_username, sasl_plain_password=password)
    return config


class OutboxRelay:
    """Publishes the outbox. One instance per process; the producer is reused across
    passes and rebuilt after a failure (a restarted broker forgets idempotent producer ids)."""

    def __init__(self, engine: Engine, bootstrap: str, bus: BusSettings,
                 env: Mapping[str, str] | None = None,
                 producer_factory: ProducerFactory = KafkaProducer) -> None:
        self.engine = engine
        self.bootstrap = bootstrap
        self.bus = bus
        self.config = producer_config(bootstrap, bus, os.environ if env is None else env)
        self.producer_factory = producer_factory
        self._producer: Any = None

    # -- producer -------------------------------------------------------------------------

    def _connect(self) -> Any:
        if self._producer is None:
            try:
                self._producer = self.producer_factory(**self.config)
            except KafkaError as exc:
                raise RetriableError(f"Kafka at {self.bootstrap} is unreachable ({exc}); "
                                     "events stay in the outbox and are sent later") from exc
        return self._producer

    def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=1)
            except KafkaError:  # closing a producer of a dead broker may time out
                log.debug("closing the Kafka producer failed", exc_info=True)

    def close(self) -> None:
        self._drop_producer()

    # -- relaying -------------------------------------------------------------------------

    def relay_batch(self) -> int:
        """Send one batch and mark what the broker acknowledged; return how many."""
        producer = self._connect()
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(outbox).where(outbox.c.published_at.is_(None))
                .order_by(outbox.c.id).limit(self.bus.batch_size)
                .with_for_update(skip_locked=True)).mappings().all()
            if not rows:
                return 0
            futures: list[tuple[int, Any]] = []
            failure: KafkaError | None = None
            for row in rows:
                message = to_message(row, self.bus.topic, self.bus.source)
                try:
                    futures.append((message.outbox_id, producer.send(
                        message.topic, key=message.key, value=message.value,
                        headers=message.headers)))
                except KafkaError as exc:  # metadata unavailable within max_block_ms
                    failure = exc
                    break
            try:
                producer.flush(timeout=self.bus.send_timeout_seconds)
            except KafkaError as exc:
                failure = failure or exc
            acked: list[int] = []
            unacked: list[int] = [int(r["id"]) for r in rows][len(futures):]
            for outbox_id, future in futures:
                try:
                    future.get(timeout=0.1)
                except KafkaError as exc:
                    failure = failure or exc
                    unacked.append(outbox_id)
                else:
                    acked.append(outbox_id)
            self._mark_published(conn, acked, now)
            if unacked:
                conn.execute(update(outbox).where(outbox.c.id.in_(unacked))
                             .values(attempts=outbox.c.attempts + 1))
        if failure is not None:
            self._drop_producer()
            raise RetriableError(f"Kafka at {self.bootstrap} did not acknowledge "
                                 f"{len(unacked)} of {len(rows)} events ({failure!r}); "
                                 "they stay in the outbox and are sent again")
        return len(acked)

    def _mark_published(self, conn: Connection, ids: list[int], now: datetime) -> None:
        for start in range(0, len(ids), 900):
            conn.execute(update(outbox).where(outbox.c.id.in_(ids[start:start + 900]))
                         .values(published_at=now, attempts=outbox.c.attempts + 1))

    def relay(self, max_batches: int | None = None) -> RelayResult:
        """Relay until the outbox is empty (or ``max_batches``); a broker fault ends the pass
        with the error recorded, never with a lost event."""
        result = RelayResult()
        batches = 0
        try:
            while max_batches is None or batches < max_batches:
                sent = self.relay_batch()
                result.published += sent
                batches += 1
                if sent < self.bus.batch_size:
                    break
        except RetriableError as exc:
            result.error = str(exc)
            log.warning("outbox relay paused: %s", exc)
        with self.engine.connect() as conn:
            result.pending = outbox_status(conn).pending
        if result.published:
            log.info("outbox relayed", extra={"published": result.published,
                                              "pending": result.pending})
        return result


class OutboxCollector(Collector):
    """Prometheus: ``reconciler_outbox_pending`` and
    ``reconciler_outbox_oldest_pending_age_seconds``, read from the database at scrape time
    (register it on the daemon's registry)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        with self.engine.connect() as conn:
            status = outbox_status(conn)
        yield GaugeMetricFamily("reconciler_outbox_pending",
                                "Events in the outbox not yet acknowledged by Kafka",
                                value=status.pending)
        yield GaugeMetricFamily("reconciler_outbox_oldest_pending_age_seconds",
                                "Age of the oldest event waiting in the outbox (0 when none)",
                                value=status.oldest_pending_age_seconds or 0.0)


class Backoff:
    """Exponential backoff for a periodic job: the base interval after a success, doubling
    per consecutive failure up to a ceiling."""

    def __init__(self, base_seconds: float, max_seconds: float) -> None:
        self.base = base_seconds
        self.max = max_seconds
        self.failures = 0

    def success(self) -> float:
        self.failures = 0
        return self.base

    def failure(self) -> float:
        self.failures += 1
        return float(min(self.max, self.base * 2 ** self.failures))
