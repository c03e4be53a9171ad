"""One run: pull → stage → resolve → check → act. The daemon and ``run --once`` call this.

Stages read what the stage before wrote. The reconcile step reads a snapshot, computes
outside any transaction, and writes every decision of the run in one unit of work — so a
crash before that commit leaves nothing half-done, and the re-run starts clean.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, delete, insert, select, update

from connectors import build_connector
from reconciler.actions import Actor, person_views
from reconciler.bus.relay import OutboxRelay, RelayResult, outbox_status
from reconciler.config import Settings
from reconciler.errors import FatalError
from reconciler.identity.index import PersonIndex
from reconciler.identity.resolve import IdentityResolver
from reconciler.ingest import DeliveryStats, pull_connector, summarize
from reconciler.metrics import Metrics
from reconciler.migrate import is_current, upgrade
from reconciler.notify import Notifier
from reconciler.registry import EmbeddedRegistry, RegistryGateway
from reconciler.rules.catalogue import Catalogue, load_catalogue
from reconciler.rules.engine import evaluate
from reconciler.rules.facts import build_facts
from reconciler.storage import create_db_engine, person_records, runs, source_records

log = logging.getLogger(__name__)

PARTNER_COLUMNS = {
    "contracts": ["employer_id", "status", "start_date", "end_date", "basic_wage",
                  "housing_allowance", "occupation_code", "updated_at"],
    "permits": ["employer_id", "status", "issue_date", "expiry_date", "occupation_code",
                "updated_at"],
    "payroll": ["employer_id", "period", "basic_wage", "housing_allowance",
                "other_allowances", "paid_on"],
}
IDENTITY = ["national_id", "residence_id", "border_number", "passport_number", "invalid_ids",
            "nationality", "name_en", "name_ar", "date_of_birth", "sex"]


class Progress:
    """Stage lines on standard error: what is running and how long each stage took."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.enabled:
            print(f"… {name}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        yield
        took = time.perf_counter() - start
        self.timings[name] = round(took, 3)
        if self.enabled:
            print(f"✓ {name} ({took:.1f}s)", file=sys.stderr, flush=True)


@dataclass
class RunReport:
    as_of: date
    ingest: dict[str, dict[str, int]] = field(default_factory=dict)
    identity: dict[str, int] = field(default_factory=dict)
    findings: dict[str, Any] = field(default_factory=dict)
    notifications: dict[str, int] = field(default_factory=dict)
    outbox: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Reconciler:
    """The wiring of one deployment: settings, engine, registry, catalogue."""

    settings: Settings
    engine: Engine
    registry: RegistryGateway
    catalogue: Catalogue
    index: PersonIndex | None = None  # the daemon's person index, kept between reconciles
    metrics: Metrics | None = None  # set by the daemon (its /metrics); None for run --once

    @classmethod
    def from_settings(cls, settings: Settings, registry: RegistryGateway | None = None,
                      migrate: bool | None = None) -> Reconciler:
        engine = create_db_engine(settings.database_url)
        if migrate if migrate is not None else settings.is_embedded:
            upgrade(engine)
        elif not is_current(engine):
            raise FatalError("the database schema is not current: run `reconciler db upgrade`")
        return cls(settings, engine, registry or EmbeddedRegistry(),
                   load_catalogue(settings.rules_path))

    def notifier(self) -> Notifier:
        return Notifier(self.engine, self.settings.notify)

    def outbox_relay(self) -> OutboxRelay | None:
        """The relay to Kafka, or None when ``kafka_bootstrap`` is unset (events wait)."""
        bootstrap = self.settings.kafka_bootstrap
        return OutboxRelay(self.engine, bootstrap, self.settings.bus) if bootstrap else None

    # -- stages ---------------------------------------------------------------------------

    def notify(self, as_of: date) -> dict[str, int]:
        """Plan and send the employer digests of what is new (a no-op with no channel)."""
        return self.notifier().run(as_of).as_dict()

    def flush_outbox(self) -> dict[str, Any]:
        """Publish every pending event; a broker that is down keeps them for next time."""
        relay = self.outbox_relay()
        if relay is None:
            with self.engine.connect() as conn:
                return {"published": 0, "pending": outbox_status(conn).pending,
                        "relay": "off (RECONCILER_KAFKA_BOOTSTRAP unset)"}
        try:
            result: RelayResult = relay.relay()
        finally:
            relay.close()
        out: dict[str, Any] = {"published": result.published, "pending": result.pending}
        if result.error:
            out["error"] = result.error
        return out

    def pull(self, progress: Progress | None = None) -> list[DeliveryStats]:
        progress = progress or Progress(False)
        results: list[DeliveryStats] = []
        profile = self.settings.identity.profile
        for declared in self.settings.connectors:
            with progress.stage(f"pull {declared.name}"):
                connector = build_connector(declared, self.settings.inbox)
                results.extend(pull_connector(self.engine.begin, connector, profile))
        return results

    def reconcile(self, as_of: date, progress: Progress | None = None,
                  now: datetime | None = None, incremental: bool = False) -> RunReport:
        """One reconcile. ``incremental`` (the daemon) keeps a :class:`PersonIndex` between
        calls and re-resolves only what changed since the last one; the persons are the
        same a full resolution would give (``tests/integration/test_incremental.py``)."""
        progress = progress or Progress(False)
        now = now or datetime.now(UTC)
        report = RunReport(as_of=as_of)
        with progress.stage("load"), self.engine.connect() as conn:
            partner = {feed: _partner_frame(conn, feed, cols)
                       for feed, cols in PARTNER_COLUMNS.items()}
            contributors = self.registry.contributors(conn)
            engagements = self.registry.engagements(conn)
            previous = dict(conn.execute(select(person_records.c.record_ref,
                                                person_records.c.person_id)).all())
        records = _identity_records(partner, contributors, engagements)
        with progress.stage("resolve identities"):
            ident = self.settings.identity
            resolver = IdentityResolver(ident.auto_threshold, ident.review_threshold,
                                        ident.max_block_size)
            if incremental:
                if self.index is None:
                    self.index = PersonIndex(resolver, person_of=dict(previous))
                delta = self.index.changed(records)
                touched = self.index.apply(delta) if len(delta) else None
                resolution = self.index.resolution({
                    "records": len(records), "changed": len(delta),
                    "re_resolved": touched.stats["records"] if touched else 0,
                    "persons": len(self.index.members)})
            else:
                resolution = resolver.resolve(records, previous)
        report.identity = resolution.stats
        person_of = pd.Series(resolution.person_of, dtype=object)
        records["person_id"] = records["ref"].map(person_of)
        with progress.stage("check signs"):
            for feed, frame in partner.items():
                frame["person_id"] = (feed + ":" + frame["key"].astype(str)).map(person_of)
            contributors = contributors.copy()
            contributors["person_id"] = ("contributors:" + contributors["contributor_id"]
                                         .astype(str)).map(person_of)
            engagements = engagements.copy()
            engagements["person_id"] = engagements["contributor_id"].map(
                contributors.set_index("contributor_id")["person_id"])
            facts = build_facts(as_of, partner["contracts"], partner["permits"],
                                partner["payroll"], contributors, engagements)
            hits = evaluate(self.catalogue, facts)
            views = person_views(records, resolution.persons, {h.person_id for h in hits})
        with progress.stage("act"), self.engine.begin() as conn:
            actor = Actor(conn, self.catalogue, self.registry, ident.auto_threshold, as_of, now)
            stats = actor.act(hits, views)
            _save_person_index(conn, previous, resolution.person_of)
        report.findings = {"opened": stats.opened, "updated": stats.updated,
                           "reopened": stats.reopened, "resolved": stats.resolved,
                           "auto_registered": stats.auto_registered,
                           "unchanged": stats.unchanged, "by_rule": stats.by_rule}
        return report

    def run_once(self, progress: Progress | None = None) -> RunReport:
        """Pull every connector once, reconcile, act; record the run."""
        progress = progress or Progress(False)
        as_of = self.settings.today()
        started = datetime.now(UTC)
        with self.engine.begin() as conn:
            run_id = conn.execute(insert(runs).values(
                started_at=started, as_of=as_of, status="running").returning(runs.c.id)
            ).scalar_one()
        status = "failed"
        try:
            pulled = self.pull(progress)
            report = self.reconcile(as_of, progress)
            report.ingest = summarize(pulled)
            with progress.stage("notify employers"):
                report.notifications = self.notify(as_of)
            with progress.stage("publish events"):
                report.outbox = self.flush_outbox()
            report.timings = progress.timings
            if self.metrics is not None:
                for delivery in pulled:
                    self.metrics.observe_delivery(delivery)
                self.metrics.observe_run(report)
            status = "succeeded"
            return report
        finally:
            if status == "failed" and self.metrics is not None:
                self.metrics.observe_run_failed()
            with self.engine.begin() as conn:
                conn.execute(update(runs).where(runs.c.id == run_id).values(
                    finished_at=datetime.now(UTC), status=status,
                    stats={"timings": progress.timings}))


def _partner_frame(conn: Connection, feed: str, columns: list[str]) -> pd.DataFrame:
    cols = ["record_key", *IDENTITY, *[c for c in columns if c not in IDENTITY]]
    table = source_records
    rows = conn.execute(select(*[table.c[c] for c in cols])
                        .where(table.c.feed == feed, table.c.is_current)
                        .order_by(table.c.id)).all()
    frame = pd.DataFrame(rows, columns=cols).rename(columns={"record_key": "key"})
    for col in ("basic_wage", "housing_allowance", "other_allowances"):
        if col in frame:
            frame[col] = pd.to_numeric(frame[col])
    return frame


def _identity_records(partner: dict[str, pd.DataFrame], contributors: pd.DataFrame,
                      engagements: pd.DataFrame) -> pd.DataFrame:
    """Every identity-bearing record, one row each; a registry record carries the employer
    of its active engagement, which the resolver's same-employer evidence uses."""
    active = engagements[engagements["status"] == "ACTIVE"]
    contributors = contributors.assign(employer_id=contributors["contributor_id"].map(
        active.groupby("contributor_id")["employer_id"].first()))
    frames = []
    for feed, frame in partner.items():
        sub = frame.reindex(columns=["key", "employer_id", "updated_at", *IDENTITY]).copy()
        sub.insert(0, "feed", feed)
        frames.append(sub)
    reg = contributors.rename(columns={"contributor_id": "key"}).reindex(
        columns=["key", "employer_id", "updated_at", *IDENTITY]).copy()
    reg.insert(0, "feed", "contributors")
    frames.append(reg)
    columns = ["feed", "key", "employer_id", "updated_at", *IDENTITY]
    frames = [f.astype(object) for f in frames if not f.empty]
    records = (pd.concat(frames, ignore_index=True) if frames
               else pd.DataFrame(columns=columns))
    records.insert(0, "ref", records["feed"] + ":" + records["key"].astype(str))
    return records


def _save_person_index(conn: Connection, previous: dict[str, str],
                       current: dict[str, str]) -> None:
    """Write only what changed: the index is as large as the data, the change is small."""
    gone = [ref for ref in previous if ref not in current]
    changed = [{"record_ref": ref, "person_id": pid} for ref, pid in current.items()
               if previous.get(ref) != pid]
    stale = [r["record_ref"] for r in changed if r["record_ref"] in previous]
    doomed = gone + stale
    for i in range(0, len(doomed), 900):
        conn.execute(delete(person_records)
                     .where(person_records.c.record_ref.in_(doomed[i:i + 900])))
    if changed:
        conn.execute(insert(person_records), changed)
