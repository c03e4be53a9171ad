"""One run: pull → stage → resolve → check → act. The daemon and ``run --once`` call this.

Stages read what the stage before wrote. The reconcile step reads a snapshot, computes
outside any transaction, and writes every decision of the run in one unit of work — so a
crash before that commit leaves nothing half-done, and the re-run starts clean.
"""

from __future__ import annotations

import gc
import logging
import os
import resource
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import Connection, Engine, Table, insert, inspect, select, update
from sqlalchemy.exc import SQLAlchemyError

from connectors import build_connector
from reconciler.actions import Actor, column_values, person_views
from reconciler.bus.relay import OutboxRelay, RelayResult, outbox_status
from reconciler.config import Settings
from reconciler.errors import FatalError
from reconciler.identity.index import PersonIndex
from reconciler.identity.resolve import IdentityResolver, Resolution, WeightTable
from reconciler.ingest import DeliveryStats, pull_connector, summarize, validation_worker
from reconciler.metrics import Metrics
from reconciler.migrate import is_current, upgrade
from reconciler.notify import Notifier
from reconciler.registry import (
    SHARED_ACROSS_FEEDS,
    EmbeddedRegistry,
    RegistryGateway,
    gc_paused,
    read_frame,
)
from reconciler.rules.catalogue import Catalogue, load_catalogue
from reconciler.rules.engine import evaluate
from reconciler.rules.facts import build_facts
from reconciler.storage import (
    create_db_engine,
    insert_rows,
    person_records,
    runs,
    source_records,
    sqlite_cache,
)

log = logging.getLogger(__name__)

PARTNER_COLUMNS = {
    "contracts": ["employer_id", "status", "start_date", "end_date", "basic_wage",
                  "housing_allowance", "occupation_code", "updated_at"],
    "permits": ["employer_id", "status", "issue_date", "expiry_date", "occupation_code",
                "updated_at"],
    "payroll": ["employer_id", "period", "basic_wage", "housing_allowance",
                "other_allowances", "paid_on"],
}
ACT_CACHE_MIB = 256  # SQLite page cache while the act writes (see storage.sqlite_cache)
IDENTITY = ["national_id", "residence_id", "border_number", "passport_number", "invalid_ids",
            "nationality", "name_en", "name_ar", "date_of_birth", "sex"]


class Progress:
    """Stage lines on standard error: what is running, how long each stage took, and the
    process's peak resident memory when it ended (``peak_mib``: a high-water mark, so the
    stage where it first reaches the run's peak is the one that set it)."""

    def __init__(self, enabled: bool | None = None,
                 heartbeat: Callable[[str], None] | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.timings: dict[str, float] = {}
        self.peak_mib: dict[str, int] = {}
        self.heartbeat = heartbeat  # called as each stage starts (the run's sign of life)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.heartbeat is not None:
            self.heartbeat(name)
        if self.enabled:
            print(f"… {name}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        yield
        took = time.perf_counter() - start
        self.timings[name] = round(took, 3)
        # ru_maxrss is in KiB on Linux; the process's own, not its workers'
        self.peak_mib[name] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        if self.enabled:
            print(f"✓ {name} ({took:.1f}s, peak {self.peak_mib[name]:,} MiB)",
                  file=sys.stderr, flush=True)


@dataclass
class RunReport:
    as_of: date
    ingest: dict[str, dict[str, int]] = field(default_factory=dict)
    identity: dict[str, int] = field(default_factory=dict)
    findings: dict[str, Any] = field(default_factory=dict)
    notifications: dict[str, int] = field(default_factory=dict)
    outbox: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    peak_mib: dict[str, int] = field(default_factory=dict)


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

    @cached_property
    def weights(self) -> WeightTable | None:
        """``identity.weights_file`` read once for this deployment (None: hand-set)."""
        return self.settings.identity_weights()

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
        with validation_worker() as worker:
            for declared in self.settings.connectors:
                with progress.stage(f"pull {declared.name}"):
                    connector = build_connector(declared, self.settings.inbox)
                    results.extend(pull_connector(self.engine.begin, connector, profile,
                                                  worker=worker))
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
            # one table of the identifiers and names read: the ones every feed repeats are
            # held once (read_frame; most of the load's memory at a million workers)
            strings: dict[Any, Any] = {}
            partner = {feed: _partner_frame(conn, feed, cols, strings)
                       for feed, cols in PARTNER_COLUMNS.items()}
            if isinstance(self.registry, EmbeddedRegistry):
                contributors = self.registry.contributors(conn, strings)
                engagements = self.registry.engagements(conn, strings)
            else:
                contributors = _shared(self.registry.contributors(conn), strings)
                engagements = self.registry.engagements(conn)
            del strings
            previous = _person_index(conn)
            records = _identity_records(partner, contributors, engagements)
            partner, contributors = _views_of_records(records, partner, contributors)
        with progress.stage("resolve identities"):
            ident = self.settings.identity
            resolver = IdentityResolver(ident.auto_threshold, ident.review_threshold,
                                        ident.max_block_size,
                                        weights=self.weights)
            if incremental:
                if self.index is None:
                    self.index = PersonIndex(resolver, person_of=dict(previous))
                delta = self.index.changed(records)
                touched = self.index.apply(delta) if len(delta) else None
                resolution = self.index.resolution({
                    "records": len(records), "changed": len(delta),
                    "re_resolved": touched.stats["records"] if touched else 0,
                    "persons": len(self.index.members)})
                del delta, touched
            else:
                resolution = resolver.resolve(records, previous)
        report.identity = resolution.stats
        with progress.stage("check signs"):
            # records run feed by feed in the order of the frames they were built from:
            # each frame's persons are a slice of the records' (no second lookup by ref)
            refs = records["ref"].to_numpy()
            person_ids = _person_ids(resolution, refs)
            changes = _index_changes(previous, refs, person_ids)
            del previous, refs
            records["person_id"] = person_ids
            start = 0
            for frame in (*partner.values(), contributors):
                frame["person_id"] = person_ids[start:start + len(frame)]
                start += len(frame)
            del person_ids
            engagements["person_id"] = engagements["contributor_id"].map(
                contributors.set_index("contributor_id")["person_id"])
            facts = build_facts(as_of, partner["contracts"], partner["permits"],
                                partner["payroll"], contributors, engagements)
            hits = evaluate(self.catalogue, facts)
            del facts, partner, contributors, engagements
            views = person_views(records, resolution.persons, {h.person_id for h in hits})
            del records
            gc.collect()
        with progress.stage("act"), self.engine.begin() as conn, \
                sqlite_cache(conn, ACT_CACHE_MIB):
            actor = Actor(conn, self.catalogue, self.registry, ident.auto_threshold, as_of, now)
            stats = actor.act(hits, views)
            del actor, views, hits
            _save_person_index(conn, changes)
        del resolution, changes
        gc.collect()
        report.findings = {"opened": stats.opened, "updated": stats.updated,
                           "reopened": stats.reopened, "resolved": stats.resolved,
                           "auto_registered": stats.auto_registered,
                           "unchanged": stats.unchanged, "by_rule": stats.by_rule}
        return report

    def run_once(self, progress: Progress | None = None) -> RunReport:
        """Pull every connector once, reconcile, act; record the run (:class:`RunRecord`)."""
        progress = progress or Progress(False)
        as_of = self.settings.today()
        run = RunRecord.start(self.engine, as_of)
        progress.heartbeat = run.beat
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
            report.peak_mib = progress.peak_mib
            if self.metrics is not None:
                for delivery in pulled:
                    self.metrics.observe_delivery(delivery)
                self.metrics.observe_run(report)
            status = "succeeded"
            return report
        finally:
            progress.heartbeat = None
            if status == "failed" and self.metrics is not None:
                self.metrics.observe_run_failed()
            run.finish(status, {"timings": progress.timings, "peak_mib": progress.peak_mib})


# -- the runs table ----------------------------------------------------------------------------

STALE_RUN = timedelta(hours=2)


def run_process() -> dict[str, Any]:
    """The process a run row is written by: host name, PID namespace (two containers may
    share a host name, never a namespace), PID and the process's start time in clock ticks
    since boot (a PID is reused; a PID with its start time is not). Linux gives all four;
    elsewhere the namespace and start time are None."""
    return {"host": socket.gethostname(), "pid_ns": _pid_namespace(), "pid": os.getpid(),
            "pid_start": _process_start(os.getpid())}


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _process_start(pid: int) -> str | None:
    """Field 22 of ``/proc/<pid>/stat`` (after the parenthesised command name, which may
    itself hold spaces and parentheses); None without procfs or without the process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19] if len(fields) > 19 else None


def _process_gone(process: Mapping[str, Any]) -> bool | None:
    """Whether the process a row names is known to have ended: True/False when it ran in
    this PID namespace on this host, None when this process cannot tell."""
    me = run_process()
    if process.get("host") != me["host"] or process.get("pid_ns") != me["pid_ns"]:
        return None
    try:
        pid = int(process["pid"])
    except (KeyError, TypeError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    started = process.get("pid_start")
    return started is not None and _process_start(pid) not in (None, started)


def _aware(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def reap_abandoned_runs(conn: Connection, now: datetime, keep: int | None = None,
                        stale_after: timedelta = STALE_RUN) -> list[int]:
    """Mark ``abandoned`` the ``running`` rows whose run is over without having said so —
    killed (SIGKILL, the OOM killer, a power cut), so its ``finally`` never ran; the ids
    marked. A row is abandoned when

    * its process ran on this host, in this PID namespace, and is gone: no such PID, or
      the PID belongs to a process started at another time (reused). Exact, and at
      once: this is what clears a ``run --once`` or a daemon killed on the machine that
      runs the next one; or
    * nothing has been heard of it for ``stale_after``: its last heartbeat (written as
      each stage starts), else its start. This covers a run on another host, a row
      written before runs recorded their process, and a live process whose run ended
      without its final write (the database was down at that moment). Two hours is far
      above any stage at the sizes the reconciler is built for.

    Not from the database's locks: on SQLite a run holds the write lock only while it
    commits a unit of work, not for the whole run, and on PostgreSQL two daemons without
    the scheduler lease may overlap. A live run wrongly marked (a stage silent for longer
    than ``stale_after``) puts its own status back when it ends: the final update is by
    id and sets the status whatever it was. ``keep``: the caller's own row."""
    rows = conn.execute(select(runs.c.id, runs.c.started_at, runs.c.stats)
                        .where(runs.c.status == "running")).all()
    marked = []
    for run_id, started_at, stats in rows:
        if run_id == keep:
            continue
        stats = stats if isinstance(stats, dict) else {}
        process = stats.get("process")
        process = process if isinstance(process, dict) else {}
        gone = _process_gone(process) if process else None
        last = _aware(stats.get("heartbeat_at")) or _aware(started_at)
        if gone:
            reason = f"process {process.get('pid')} on {process.get('host')} is gone"
        elif last is not None and now - last > stale_after:
            reason = f"no sign of life since {last.isoformat()}"
        else:
            continue
        conn.execute(update(runs).where(runs.c.id == run_id, runs.c.status == "running")
                     .values(status="abandoned", stats={
                         **stats, "abandoned": {"at": now.isoformat(), "reason": reason,
                                                "by": run_process()}}))
        log.warning("run %s abandoned: %s", run_id, reason)
        marked.append(int(run_id))
    return marked


@dataclass
class RunRecord:
    """A run's row in ``runs``: written as it starts (abandoned rows reaped in the same
    transaction), a heartbeat as each stage starts, the outcome as it ends. The row says
    which process runs it (:func:`run_process`), so the next run can tell a killed one
    from a live one (:func:`reap_abandoned_runs`)."""

    engine: Engine
    run_id: int
    stats: dict[str, Any]

    @classmethod
    def start(cls, engine: Engine, as_of: date, stats: Mapping[str, Any] | None = None,
              now: datetime | None = None) -> RunRecord:
        now = now or datetime.now(UTC)
        row = {**(stats or {}), "process": run_process(), "heartbeat_at": now.isoformat()}
        with engine.begin() as conn:
            # the insert first: on SQLite it takes the write lock before anything is read
            run_id = conn.execute(insert(runs).values(
                started_at=now, as_of=as_of, status="running", stats=row)
                .returning(runs.c.id)).scalar_one()
            reap_abandoned_runs(conn, now, keep=run_id)
        return cls(engine, int(run_id), row)

    def beat(self, stage: str) -> None:
        """The run is alive, at ``stage`` (best effort: a failed write is only logged)."""
        now = datetime.now(UTC)
        self.stats = {**self.stats, "heartbeat_at": now.isoformat(), "stage": stage}
        try:
            with self.engine.begin() as conn:
                conn.execute(update(runs).where(runs.c.id == self.run_id)
                             .values(stats=self.stats))
        except SQLAlchemyError as exc:
            log.warning("run %s: heartbeat not written: %s", self.run_id, exc)

    def finish(self, status: str, stats: Mapping[str, Any]) -> None:
        """Record the outcome (over ``abandoned`` too: a run that ends says how)."""
        final = {k: v for k, v in self.stats.items() if k != "stage"} | dict(stats)
        with self.engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == self.run_id).values(
                finished_at=datetime.now(UTC), status=status, stats=final))


def _partner_frame(conn: Connection, feed: str, columns: list[str],
                   strings: dict[Any, Any] | None = None) -> pd.DataFrame:
    cols = ["record_key", *IDENTITY, *[c for c in columns if c not in IDENTITY]]
    table = source_records
    frame = read_frame(conn, select(*[table.c[c] for c in cols])
                       .where(table.c.feed == feed, table.c.is_current)
                       .order_by(table.c.id), distinct=("record_key",), strings=strings
                       ).rename(columns={"record_key": "key"}, copy=False)
    for col in ("basic_wage", "housing_allowance", "other_allowances"):
        if col in frame:
            frame[col] = pd.to_numeric(frame[col])
    return frame


def _identity_records(partner: dict[str, pd.DataFrame], contributors: pd.DataFrame,
                      engagements: pd.DataFrame) -> pd.DataFrame:
    """Every identity-bearing record, one row each, feed by feed in the order of
    ``partner`` and then the registry; a registry record carries the employer of its
    active engagement, which the resolver's same-employer evidence uses.

    Built column by column (one copy of each column, the values themselves shared with
    the frames they come from); a column a feed lacks is NaN, as ``reindex`` gives
    (``updated_at``: NaT)."""
    active = engagements[engagements["status"] == "ACTIVE"]
    employer = contributors["contributor_id"].map(
        active.groupby("contributor_id", sort=False)["employer_id"].first())
    registry = contributors.rename(columns={"contributor_id": "key"}, copy=False)
    registry["employer_id"] = employer
    columns = ["key", "employer_id", "updated_at", *IDENTITY]
    parts = [(feed, frame) for feed, frame in [*partner.items(), ("contributors", registry)]
             if not frame.empty]
    if not parts:
        records = pd.DataFrame(columns=["feed", *columns])
        records.insert(0, "ref", records["feed"] + ":" + records["key"].astype(str))
        return records
    data: dict[str, npt.NDArray[Any]] = {
        "feed": np.concatenate([_filled(len(f), feed) for feed, f in parts])}
    for col in columns:
        if col != "updated_at":
            data[col] = np.concatenate([_objects(f, col) for _, f in parts])
    records = pd.DataFrame(data, dtype=object, copy=False)
    # only the person views read it (to order a person's records): kept as the instants
    # they are, not one Timestamp object per record
    records.insert(3, "updated_at", pd.concat(
        [f["updated_at"] if "updated_at" in f else
         pd.Series(pd.NaT, index=range(len(f)), dtype="datetime64[ns, UTC]")
         for _, f in parts], ignore_index=True))
    refs = np.concatenate([feed + ":" + f["key"].astype(str).to_numpy(dtype=object)
                           for feed, f in parts])
    records.insert(0, "ref", refs)
    return records


def _views_of_records(records: pd.DataFrame, partner: dict[str, pd.DataFrame],
                      contributors: pd.DataFrame
                      ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The frames :func:`_identity_records` was built from, each column the records also
    hold (key, employer, identity fields) now a slice of the records' column: one array
    of references per column instead of two (half a gigabyte at a million workers)."""
    out: dict[str, pd.DataFrame] = {}
    start = 0
    for feed, frame in [*partner.items(), ("contributors", contributors)]:
        if frame.empty:  # not in the records
            out[feed] = frame
            continue
        stop = start + len(frame)
        data: dict[str, Any] = {}
        for col in frame.columns:
            source = "key" if (feed, col) == ("contributors", "contributor_id") else col
            shared = source in ("key", "updated_at", *IDENTITY) or (
                source == "employer_id" and feed != "contributors")  # the registry's: derived
            if shared and source in records and records[source].dtype == frame[col].dtype:
                data[col] = column_values(records[source])[start:stop]
            else:
                data[col] = column_values(frame[col])
        out[feed] = pd.DataFrame(data, index=frame.index, copy=False)
        start = stop
    return {feed: out[feed] for feed in partner}, out["contributors"]


def _objects(frame: pd.DataFrame, col: str) -> npt.NDArray[Any]:
    """``frame[col]`` as Python objects (as ``astype(object)`` gives); NaN when absent."""
    out: npt.NDArray[Any] = (frame[col].to_numpy(dtype=object) if col in frame
                             else _filled(len(frame), np.nan))
    return out


def _filled(n: int, value: object) -> npt.NDArray[Any]:
    """``n`` times the one object ``value`` (``np.full`` would make ``n`` copies of it)."""
    out = np.empty(n, dtype=object)
    out.fill(value)
    return out


def _person_index(conn: Connection) -> dict[str, str]:
    """The stored person index, record ref -> person id (one ``str`` per person id)."""
    frame = read_frame(conn, select(person_records.c.record_ref, person_records.c.person_id),
                       distinct=("record_ref",))
    return dict(zip(frame["record_ref"].tolist(), frame["person_id"].tolist(), strict=True))


def _shared(frame: pd.DataFrame, strings: dict[Any, Any]) -> pd.DataFrame:
    """``frame`` (from a registry of the institution's own) with its identifiers and names
    taken from ``strings``, as :func:`read_frame` does for the embedded one; a column of
    anything but text is left as is."""
    for col in SHARED_ACROSS_FEEDS:
        if col in frame and frame[col].dtype == object:
            values = frame[col].tolist()
            try:
                shared = list(map(strings.setdefault, values, values))
            except TypeError:  # unhashable: not text
                continue
            out = np.empty(len(shared), dtype=object)
            out[:] = shared
            frame[col] = out
    return frame


SAVE_CHUNK = 100_000  # person_records rows written per statement
BULK_INDEX_ROWS = 100_000  # new person_records rows from which its indexes are rebuilt


@dataclass
class IndexChanges:
    """What the stored person index needs to equal this run's persons: refs ``gone``,
    ``moved`` (new person id, ref), and the refs at ``new`` places of ``refs`` added
    (with ``person_ids`` at the same places) — kept as places, not rows, until written:
    on a first run that is every record."""

    gone: list[tuple[str]]
    moved: list[tuple[str, str]]
    refs: npt.NDArray[Any]
    person_ids: npt.NDArray[Any]
    new: npt.NDArray[np.intp]

    def added(self) -> list[tuple[str, str]]:
        """The (ref, person id) rows to insert, in ref order (appended to the primary
        key's B-tree instead of scattered over it: half the time on SQLite)."""
        return sorted(zip(self.refs[self.new].tolist(), self.person_ids[self.new].tolist(),
                          strict=True), key=itemgetter(0))

    @property
    def bulk(self) -> bool:
        """Most of the index is new (a first run): cheaper to build its secondary indexes
        once after the insert than to keep them up to date row by row."""
        return len(self.new) >= BULK_INDEX_ROWS and len(self.new) > len(self.refs) // 2


def _index_changes(previous: dict[str, str], refs: npt.NDArray[Any],
                   person_ids: npt.NDArray[Any]) -> IndexChanges:
    """Compare this run's persons (``person_ids[k]`` of ``refs[k]``) with ``previous``,
    which this empties (what is left in it is gone)."""
    with gc_paused():
        before = np.empty(len(refs), dtype=object)
        before[:] = list(map(previous.pop, refs.tolist(), repeat(None)))
        gone = [(ref,) for ref in previous]
        previous.clear()
        stored = ~_is_none(before)
        resolved = ~np.asarray(pd.isna(person_ids), dtype=bool)  # every record, in practice
        gone += [(ref,) for ref in refs[stored & ~resolved].tolist()]
        new = np.flatnonzero(~stored & resolved)
        moved_at = np.flatnonzero(stored & resolved & np.not_equal(before, person_ids))
        moved = list(zip(person_ids[moved_at].tolist(), refs[moved_at].tolist(),
                         strict=True))
    return IndexChanges(gone, moved, refs, person_ids, new)


def _save_person_index(conn: Connection, changes: IndexChanges) -> None:
    """Write only what changed: the index is as large as the data, the change is small.
    Records no longer present are deleted, moved ones updated, new ones inserted — each
    in bulk on the driver's cursor (``COPY`` for the inserts on PostgreSQL)."""
    with gc_paused(), _indexes_rebuilt(conn, person_records, changes.bulk):
        _executemany(conn, "DELETE FROM person_records WHERE record_ref = ?", changes.gone)
        _executemany(conn, "UPDATE person_records SET person_id = ? WHERE record_ref = ?",
                     changes.moved)
        added = changes.added()
        if conn.dialect.name == "postgresql":
            for i in range(0, len(added), SAVE_CHUNK):
                insert_rows(conn, person_records, ["record_ref", "person_id"],
                            added[i:i + SAVE_CHUNK])
        else:
            _executemany(conn, "INSERT INTO person_records (record_ref, person_id) "
                         "VALUES (?, ?)", added)


@contextmanager
def _indexes_rebuilt(conn: Connection, table: Table, bulk: bool) -> Iterator[None]:
    """With ``bulk``: the table's secondary indexes dropped for the block and built again
    after it, in the caller's transaction (SQLite and PostgreSQL both roll DDL back with
    it, so a crash leaves them as they were). Building an index over five million rows
    once takes a third of the time of inserting them into it one by one."""
    if not bulk or (conn.dialect.name == "sqlite"
                    and not conn.connection.driver_connection.in_transaction):  # type: ignore[union-attr]
        # (pysqlite opens its transaction at the first write: DDL before it would commit
        # on its own, outside the unit of work. The act's first statement is a write.)
        yield
        return
    present = {ix["name"] for ix in inspect(conn).get_indexes(table.name)}
    dropped = [ix for ix in table.indexes if ix.name in present]
    for index in dropped:
        index.drop(conn)
    yield
    for index in dropped:
        index.create(conn)


def _is_none(values: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    return np.asarray(values == None, dtype=bool)  # noqa: E711 (element-wise)


def _person_ids(resolution: Resolution, refs: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The person of each ref (NaN for one not resolved): at array speed where the
    resolution offers it, without building a dictionary of every record."""
    many = getattr(resolution, "person_ids", None)
    if many is not None:
        ids: npt.NDArray[Any] = many(refs)
        missing = _is_none(ids)
        if missing.any():
            ids[missing] = np.nan
        return ids
    out = np.empty(len(refs), dtype=object)
    out[:] = list(map(resolution.person_of.get, refs.tolist(), repeat(np.nan)))
    return out


def _executemany(conn: Connection, sql: str, rows: Sequence[tuple[str, ...]]) -> None:
    """``sql`` (``?`` placeholders) once per row, on the driver's cursor."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        sql = sql.replace("?", "%s")
    for i in range(0, len(rows), SAVE_CHUNK):
        conn.exec_driver_sql(sql, rows[i:i + SAVE_CHUNK])
