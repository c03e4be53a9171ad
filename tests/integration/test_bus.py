"""The outbox relayed to a real Kafka-protocol broker (tansu, started by the fixture).

Every record is read back by a plain consumer and checked against the repository's JSON
Schemas (``schemas/events``): the CloudEvents attributes carried as ``ce_*`` headers and the
data. A consumer dedupes on ``ce_source`` + ``ce_id`` as ``docs/events.md`` tells it to.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from click.testing import CliRunner, Result
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import create_engine, insert, select
from sqlalchemy.exc import OperationalError, ProgrammingError

from reconciler.bus.cloudevents import from_headers
from reconciler.bus.relay import OutboxCollector, OutboxRelay, outbox_status
from reconciler.cli import main
from reconciler.config import BusSettings
from reconciler.migrate import upgrade
from reconciler.storage import create_db_engine, outbox
from tests.integration.conftest import Broker

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas" / "events"
TOPIC = "reconciler.events"


def cli(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def consume(bootstrap: str, expected: set[str], topic: str = TOPIC) -> list[Any]:
    """Read the topic from the beginning until every expected ``ce_id`` was seen (or give up
    after 60 s and let the caller's assertion say what is missing)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             consumer_timeout_ms=1000, max_poll_interval_ms=10_000)
    try:
        partitions = None
        for _ in range(60):
            partitions = consumer.partitions_for_topic(topic)
            if partitions:
                break
            consumer.poll(timeout_ms=500)
        assert partitions, f"topic {topic} never appeared"
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        records: list[Any] = []
        for _ in range(120):
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
            if expected <= {header(r, "ce_id") for r in records}:
                break
        return records
    finally:
        consumer.close()


def header(record: Any, name: str) -> str:
    return str(next(v.decode() for k, v in record.headers if k == name))


def validate(record: Any) -> dict[str, Any]:
    """Every header and the data against their schemas; return the structured event."""
    event = from_headers(list(record.headers), record.value)
    jsonschema_rs.validate(json.loads((SCHEMAS / "envelope.json").read_text()), event)
    kind = event["type"].removeprefix("org.reconciler.")
    schema = json.loads((SCHEMAS / f"{kind}.json").read_text())
    jsonschema_rs.validate(schema, event["data"])
    assert event["dataschema"].endswith(f"/{kind}.json")
    assert record.key.decode() == event["subject"]
    return event


def pending(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        count = outbox_status(conn).pending
    engine.dispose()
    return count


def outbox_ids(url: str) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        ids = list(conn.execute(select(outbox.c.event_id).order_by(outbox.c.id)).scalars())
    engine.dispose()
    return ids


def test_example_run_publishes_its_events_as_valid_cloudevents(
        env: dict[str, str], kafka_broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_KAFKA_BOOTSTRAP", kafka_broker.bootstrap)
    cli("db", "upgrade")
    report = json.loads(cli("run", "--once").stdout)
    # the two findings opened and Maria's auto-registration; nothing left behind
    assert report["outbox"] == {"published": 3, "pending": 0}
    url = env["RECONCILER_DATABASE_URL"]
    ids = set(outbox_ids(url))
    records = consume(kafka_broker.bootstrap, ids)
    events = [validate(r) for r in records]
    assert {e["id"] for e in events} == ids and len(events) == 3
    assert sorted(e["type"] for e in events) == [
        "org.reconciler.finding.opened", "org.reconciler.finding.opened",
        "org.reconciler.registration.auto_registered"]
    assert {e["source"] for e in events} == {"urn:reconciler"}
    # no names, no personal identifiers on the bus
    for record in records:
        for personal in (b"Maria", b"Imran", b"2735590867", b"P4410932", b"2517730046",
                         b"AB6620418"):
            assert personal not in record.value
    # one worker's events share a key, hence a partition, in outbox order
    maria = next(r for r in records if header(r, "ce_type").endswith("auto_registered"))
    same = [r for r in records if r.key == maria.key]
    assert [header(r, "ce_type").rsplit(".", 2)[-2] for r in same] == ["finding",
                                                                        "registration"]
    assert len({r.partition for r in same}) == 1
    status = cli("outbox", "status").stdout
    assert "pending: 0" in status and "published: 3" in status

    # a second run has nothing new to say
    report = json.loads(cli("run", "--once").stdout)
    assert report["outbox"] == {"published": 0, "pending": 0}


def test_broker_down_during_run_keeps_events_and_next_run_delivers(
        env: dict[str, str], kafka_broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_KAFKA_BOOTSTRAP", kafka_broker.bootstrap)
    monkeypatch.setenv("RECONCILER_CONFIG", str(_fast_config(Path(env["RECONCILER_INBOX"]))))
    kafka_broker.stop()
    cli("db", "upgrade")
    report = json.loads(cli("run", "--once").stdout)  # exit 0: the decisions are made
    assert report["outbox"]["published"] == 0
    assert report["outbox"]["pending"] == 3
    assert "unreachable" in report["outbox"]["error"] or "acknowledge" in \
        report["outbox"]["error"]
    status = json.loads(cli("outbox", "status", "--json").stdout)
    assert status["pending"] == 3 and status["oldest_pending_age_seconds"] >= 0
    engine = create_engine(env["RECONCILER_DATABASE_URL"])
    metrics = {m.name: m.samples[0].value for m in OutboxCollector(engine).collect()}
    engine.dispose()
    assert metrics["reconciler_outbox_pending"] == 3

    kafka_broker.start()
    report = json.loads(cli("run", "--once").stdout)
    assert report["outbox"] == {"published": 3, "pending": 0}
    ids = set(outbox_ids(env["RECONCILER_DATABASE_URL"]))
    records = consume(kafka_broker.bootstrap, ids)
    assert Counter(header(r, "ce_id") for r in records) == dict.fromkeys(ids, 1)


def _fast_config(inbox: Path) -> Path:
    """Short Kafka timeouts so a down broker is noticed quickly."""
    path = inbox.parent / "fast.yaml"
    path.write_text(f"rules_file: {ROOT / 'config' / 'rules.yaml'}\n"
                    "bus: {send_timeout_seconds: 2}\n", encoding="utf-8")
    return path


def _seed_outbox(url: str, persons: int, per_person: int) -> list[str]:
    """Synthetic events, interleaved across persons the way a run writes them."""
    engine = create_db_engine(url)
    upgrade(engine)
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for n in range(per_person):
        for p in range(persons):
            rows.append({"event_id": str(uuid.uuid4()),
                         "type": "org.reconciler.finding.resolved", "subject": f"P{p:07d}",
                         "time": now, "attempts": 0,
                         "payload": {"finding_id": str(uuid.uuid4()), "rule": "stale_engagement",
                                     "severity": "medium", "status": "resolved",
                                     "action": "review", "employer_id": "7000000017",
                                     "person_id": f"P{p:07d}", "confidence": 1.0 - n / 100}})
    with engine.begin() as conn:
        conn.execute(insert(outbox), rows)
    engine.dispose()
    return [r["event_id"] for r in rows]


def test_broker_stopped_mid_relay_every_event_arrives_once_after_dedupe(
        database_url: str, kafka_broker: Broker) -> None:
    ids = _seed_outbox(database_url, persons=6, per_person=10)
    engine = create_db_engine(database_url)
    relay = OutboxRelay(engine, kafka_broker.bootstrap,
                        BusSettings(batch_size=15, send_timeout_seconds=2))
    phases: list[list[Any]] = []
    try:
        first = relay.relay(max_batches=2)
        assert (first.published, first.pending, first.error) == (30, 30, None)
        # read what the broker holds now: its storage is memory, a restart forgets it
        phases.append(consume(kafka_broker.bootstrap, set(ids[:30])))

        kafka_broker.stop()
        down = relay.relay()
        assert down.published == 0 and down.pending == 30 and down.error
        with engine.connect() as conn:
            assert outbox_status(conn).max_attempts == 1  # the failed send was counted

        kafka_broker.start()
        up = relay.relay()
        assert (up.published, up.pending, up.error) == (30, 0, None)
        phases.append(consume(kafka_broker.bootstrap, set(ids[30:])))
    finally:
        relay.close()
        engine.dispose()
    seen = [record for phase in phases for record in phase]
    for record in seen:
        validate(record)
    deduped = {(header(r, "ce_source"), header(r, "ce_id")) for r in seen}
    assert {i for _, i in deduped} == set(ids)
    assert len(deduped) == len(ids)
    # within each broker's life, one person's events are in outbox order
    position = {event_id: n for n, event_id in enumerate(ids)}
    for phase in phases:
        by_key: dict[bytes, list[int]] = defaultdict(list)
        for record in sorted(phase, key=lambda r: (r.partition, r.offset)):
            by_key[record.key].append(position[header(record, "ce_id")])
        for positions in by_key.values():
            assert positions == sorted(positions)


KILLED_RELAY = textwrap.dedent("""
    import os, signal, sys
    from reconciler.bus.relay import OutboxRelay
    from reconciler.config import BusSettings
    from reconciler.storage import create_db_engine

    def die(self, conn, ids, now):  # the broker has acknowledged; the mark never happens
        os.kill(os.getpid(), signal.SIGKILL)

    OutboxRelay._mark_published = die
    relay = OutboxRelay(create_db_engine(sys.argv[1]), sys.argv[2], BusSettings())
    relay.relay()
""")


def test_relay_killed_between_send_and_mark_delivers_again_and_loses_nothing(
        database_url: str, kafka_broker: Broker) -> None:
    ids = _seed_outbox(database_url, persons=4, per_person=5)
    proc = subprocess.run([sys.executable, "-c", KILLED_RELAY, database_url,
                           kafka_broker.bootstrap], env={**os.environ}, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert pending(database_url) == len(ids)  # nothing was marked: the kill came first

    engine = create_db_engine(database_url)
    relay = OutboxRelay(engine, kafka_broker.bootstrap, BusSettings())
    try:
        result = relay.relay()
    finally:
        relay.close()
        engine.dispose()
    assert (result.published, result.pending) == (len(ids), 0)
    records = consume(kafka_broker.bootstrap, set(ids))
    for _ in range(20):  # the re-run's copies follow the killed run's
        if len(records) >= 2 * len(ids):
            break
        records = consume(kafka_broker.bootstrap, set(ids))
    delivered = Counter(header(r, "ce_id") for r in records)
    assert set(delivered) == set(ids)  # nothing lost
    assert set(delivered.values()) == {2}  # at least once: sent by both runs
    assert len({(header(r, "ce_source"), header(r, "ce_id")) for r in records}) == len(ids)


def test_daemon_relays_continuously_and_catches_up_after_the_broker_returns(
        env: dict[str, str], kafka_broker: Broker, tmp_path: Path) -> None:
    """The daemon relays on its own; with the broker gone it backs off, then catches up."""
    config = tmp_path / "daemon.yaml"
    config.write_text(f"rules_file: {ROOT / 'config' / 'rules.yaml'}\n"
                      "bus: {send_timeout_seconds: 2, interval_seconds: 1, "
                      "max_backoff_seconds: 2}\n", encoding="utf-8")
    kafka_broker.stop()  # down when the daemon reconciles: events wait in the outbox
    daemon_env = {**os.environ, "RECONCILER_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
                  "RECONCILER_CONFIG": str(config)}
    subprocess.run([sys.executable, "-m", "reconciler.cli", "db", "upgrade"], check=True,
                   env=daemon_env, capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "reconciler.cli", "run"], env=daemon_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = env["RECONCILER_DATABASE_URL"]
    try:
        engine = create_engine(url)
        for _ in range(240):  # the daemon's first reconcile writes the three events
            try:
                with engine.connect() as conn:
                    if outbox_status(conn).pending == 3:
                        break
            except (OperationalError, ProgrammingError):  # the tables are not there yet
                pass
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.25)
        kafka_broker.start()
        ids = set(outbox_ids(url))
        assert len(ids) == 3
        records = consume(kafka_broker.bootstrap, ids)
        assert {header(r, "ce_id") for r in records} == ids
        for _ in range(80):  # the mark follows the acknowledgement
            if pending(url) == 0:
                break
            time.sleep(0.25)
        assert pending(url) == 0
        engine.dispose()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
