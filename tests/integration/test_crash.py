"""kill -9 during a pull and during a reconcile: the re-run ends where an uninterrupted run
ends, with no duplicate finding, registration or event.

A generated world (2,000 workers) is reconciled on a fresh database by ``reconciler run
--once``, uninterrupted: the reference (and a second run: the steady state). On another
fresh database ``run --once`` is started as a real process and SIGKILLed at a chosen point
(parametrized: early and mid-pull, mid-delivery, in the act, after the act committed, and
twice in a row), then run again to completion, and everything a run writes is compared
with the reference — the findings export plus the lifecycle columns, finding history,
registrations, outbox events, the audit chain (verified, and entry by entry), deliveries,
every staged row version, quarantine, the person index — leaving out timestamps and
surrogate ids. One more run must then reach the reference's steady state.

Where the kill lands is never a matter of sleeping:

* ``log:<n>`` — the plain command; killed the moment its n-th ``delivery staged`` log line
  appears on standard error (free-running: the kill lands in the next delivery);
* every other point — ``crash_driver.py``: the same command with one function of the real
  path wrapped so that there it prints a marker and blocks until the kill (the points are
  listed there). Before the kill the test checks that the run holds an uncommitted write
  transaction (SQLite: the write lock; PostgreSQL: ``pg_stat_activity``), after it that
  nothing of that transaction is left (no delivery, quarantined row, finding,
  registration, event or audit entry): the kill landed inside the transaction aimed at.

The registry ids the reconciler mints (``R…`` contributors, ``RG…`` engagements) must be
the very ids of the reference (a re-run numbers them from the highest minted, never from a
PostgreSQL sequence, which does not roll back with a killed transaction); every reference
to one (finding worker, events, audit, history, person index) is also mapped to the
finding it was minted for, so a mismatched or dangling id fails the comparison twice.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from reconciler.audit import verify
from reconciler.config import load_settings
from reconciler.export import iter_findings
from reconciler.migrate import upgrade
from reconciler.notify.tables import notifications, notified_findings
from reconciler.pipeline import Progress, Reconciler, RunReport
from reconciler.storage import (
    audit_log,
    create_db_engine,
    deliveries,
    finding_history,
    findings,
    outbox,
    person_records,
    quarantine,
    registrations,
    runs,
    source_records,
)
from reconciler.synth.world import WorldSpec, generate_world, write_world
from tests.conftest import PG_ADMIN_URL
from tests.integration.crash_driver import MARKER

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("crash_driver.py")
AS_OF = "2026-11-01"
WORKERS, SEED = 2000, 11
DELIVERIES = 10  # files in the generated inbox
MINTED = re.compile(r"\bRG?\d{8,9}\b")

Snapshot = dict[str, Any]


# -- the world and the processes -------------------------------------------------------------


@pytest.fixture(scope="module")
def inbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("crash-world")
    spec = WorldSpec(workers=WORKERS, seed=SEED, as_of=date.fromisoformat(AS_OF))
    write_world(generate_world(spec), root / "inbox", root / "truth")
    assert sum(1 for p in (root / "inbox").rglob("*.csv")) == DELIVERIES
    return root / "inbox"


def _env(url: str, inbox: Path, **extra: str) -> dict[str, str]:
    """The batch interface only: no developer's RECONCILER_* setting leaks in (no Kafka, no
    SMTP, no webhook, no config file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    env.update(RECONCILER_DATABASE_URL=url, RECONCILER_INBOX=str(inbox),
               RECONCILER_AS_OF=AS_OF, RECONCILER_LOG_LEVEL="INFO", **extra)
    return env


def _migrate(url: str) -> None:
    engine = create_db_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def run_once(url: str, inbox: Path) -> dict[str, Any]:
    """``reconciler run --once`` as its own process; its report."""
    done = subprocess.run([sys.executable, "-m", "reconciler.cli", "run", "--once"],
                          env=_env(url, inbox), cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def rerun(url: str, inbox: Path) -> RunReport:
    """What ``run --once`` does, in this process (it saves the interpreter start-up, a
    good part of a run on a loaded machine): settings from the same environment, one
    ``run_once``, the engine closed."""
    app = Reconciler.from_settings(load_settings(env=_env(url, inbox)))
    try:
        return app.run_once(Progress(False))
    finally:
        app.engine.dispose()


def kill_at(url: str, inbox: Path, point: str) -> list[str]:
    """Start ``run --once``, SIGKILL it at ``point``; the stderr lines it wrote."""
    if point.startswith("log:"):
        staged = int(point.split(":")[1])
        cmd = [sys.executable, "-m", "reconciler.cli", "run", "--once"]
        env = _env(url, inbox)
        seen = 0

        def there(line: str) -> bool:
            nonlocal seen
            seen += '"message": "delivery staged"' in line
            return seen == staged
    else:
        cmd = [sys.executable, str(DRIVER), "run", "--once"]
        env = _env(url, inbox, RECONCILER_CRASH_AT=point)

        def there(line: str) -> bool:
            return line.startswith(MARKER)

    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if there(line):
                expected = WRITING.get(point.split(":")[0])
                writing = None if expected is None else writer_open(url)
                os.kill(proc.pid, signal.SIGKILL)
                assert writing == expected, f"a write transaction open at {point}: {writing}"
                break
        else:
            pytest.fail(f"run ended (exit {proc.wait()}) before {point}:\n"
                        + "".join(lines[-20:]))
    finally:
        if proc.poll() is None and proc.returncode is None:
            proc.kill()
        proc.wait(timeout=60)
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, "".join(lines[-20:])
    return lines


# at a driver's point, is the paused run inside a write transaction it has not committed?
WRITING = {"chunk": True, "ingest": True, "act": True, "notify": False}


def writer_open(url: str) -> bool:
    """Whether another connection holds an uncommitted write transaction on the database:
    PostgreSQL — a backend of this database with a transaction id (it wrote) idle in its
    transaction; SQLite — the write lock is taken (``BEGIN IMMEDIATE`` cannot get it)."""
    if url.startswith("sqlite"):
        probe = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=0,
                                isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc), exc
            return True
        finally:
            probe.close()  # rolls the probe's own empty transaction back
        return False
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return bool(conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
                " AND state LIKE 'idle in transaction%'")).scalar_one())
    finally:
        engine.dispose()


# -- what a database holds, normalised --------------------------------------------------------


def _counts(url: str) -> dict[str, int]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            out = {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                   for t in (deliveries, source_records, quarantine, findings, registrations,
                             outbox, audit_log, person_records)}
            out["quarantined_by_deliveries"] = conn.execute(
                select(func.coalesce(func.sum(deliveries.c.rows_quarantined), 0))).scalar_one()
            return out
    finally:
        engine.dispose()


def _mapper(minted: dict[str, str]) -> Callable[[Any], Any]:
    def norm(value: Any) -> Any:
        if isinstance(value, str):
            return MINTED.sub(lambda m: minted.get(m.group(), f"<unknown {m.group()}>"), value)
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [norm(v) for v in value]
        return value

    return norm


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def _sorted(rows: Iterable[Any]) -> list[Any]:
    return sorted(rows, key=_key)


def snapshot(url: str) -> Snapshot:
    """Everything a run writes, without timestamps or surrogate ids; registry ids the
    reconciler minted become ``<kind:finding_id>``."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            return _snapshot(conn)
    finally:
        engine.dispose()


def _snapshot(conn: Any) -> Snapshot:
    snap: Snapshot = {}
    regs = conn.execute(select(registrations).order_by(registrations.c.id)).mappings().all()
    minted = {r["record_id"]: f"<{r['kind']}:{r['finding_id']}>" for r in regs}
    norm = _mapper(minted)
    snap["registrations"] = _sorted(
        [r["kind"], norm(r["record_id"]), r["finding_id"], norm(r["payload"])] for r in regs)
    snap["registration_ids"] = sorted((r["finding_id"], r["kind"], r["record_id"])
                                      for r in regs)

    ok, entries, message = verify(conn)
    snap["audit_verify"] = [ok, entries] if ok else message
    snap["audit"] = [[r["actor"], r["action"], norm(r["subject"]), norm(r["details"])]
                     for r in conn.execute(select(audit_log).order_by(audit_log.c.id)
                                           ).mappings()]

    exported = [{k: v for k, v in row.items() if k not in ("first_seen", "last_seen")}
                for row in iter_findings(conn)]
    snap["findings_export"] = sorted((norm(f) for f in exported), key=lambda f: f["finding_id"])
    snap["findings_lifecycle"] = _sorted(
        [r["finding_id"], r["fingerprint"], r["rule_version"], r["person_id"], r["status"],
         r["resolution"], r["resolved_at"] is None, str(r["last_seen_as_of"]),
         r["first_seen"] == r["last_seen"]]
        for r in conn.execute(select(findings)).mappings())
    snap["finding_history"] = _sorted(
        [r["finding_id"], r["actor"], r["from_status"], r["to_status"], norm(r["note"])]
        for r in conn.execute(select(finding_history)).mappings())
    snap["outbox"] = _sorted(
        [r["type"], r["subject"], _key(norm(r["payload"])), r["published_at"] is None,
         r["attempts"]]
        for r in conn.execute(select(outbox)).mappings())

    hashes = dict(conn.execute(select(deliveries.c.id, deliveries.c.content_hash)).all())
    snap["deliveries"] = _sorted(
        [r["connector"], r["feed"], r["source"], r["content_hash"], r["rows_total"],
         r["rows_new"], r["rows_duplicate"], r["rows_superseded"], r["rows_quarantined"]]
        for r in conn.execute(select(deliveries)).mappings())
    snap["source_records"] = sorted(
        (r.feed, r.record_key, r.version, r.row_hash, r.is_current, hashes[r.delivery_id],
         r.line_no)
        for r in conn.execute(select(
            source_records.c.feed, source_records.c.record_key, source_records.c.version,
            source_records.c.row_hash, source_records.c.is_current,
            source_records.c.delivery_id, source_records.c.line_no)))
    snap["quarantine"] = _sorted(
        [r["feed"], r["source"], r["line_no"], r["field"], r["reason"],
         hashes[r["delivery_id"]], _key(r["raw"])]
        for r in conn.execute(select(quarantine)).mappings())
    snap["person_records"] = {norm(ref): pid for ref, pid in conn.execute(
        select(person_records.c.record_ref, person_records.c.person_id))}
    snap["notifications"] = [
        conn.execute(select(func.count()).select_from(t)).scalar_one()
        for t in (notifications, notified_findings)]
    return snap


def run_statuses(url: str) -> list[str]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(runs.c.status).order_by(runs.c.id)).scalars())
    finally:
        engine.dispose()


def assert_same(got: Snapshot, want: Snapshot) -> None:
    problems = []
    for part in want:
        a, b = got[part], want[part]
        if a == b:
            continue
        if isinstance(b, list) and isinstance(a, list):
            extra = Counter(map(_key, a)) - Counter(map(_key, b))
            missing = Counter(map(_key, b)) - Counter(map(_key, a))
            problems.append(f"{part}: {len(a)} rows, reference {len(b)}; "
                            f"{sum(extra.values())} extra e.g. {list(extra)[:2]}; "
                            f"{sum(missing.values())} missing e.g. {list(missing)[:2]}")
        elif isinstance(b, dict) and isinstance(a, dict):
            differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
            problems.append(f"{part}: {len(differ)} keys differ, e.g. "
                            f"{[(k, a.get(k), b.get(k)) for k in differ[:3]]}")
        else:
            problems.append(f"{part}: {a!r} != reference {b!r}")
    assert not problems, "\n".join(problems)


def assert_no_duplicates(snap: Snapshot) -> None:
    """One finding per fingerprint, one registration of each kind per finding, one event of
    each type per finding, one audit entry of each action per subject."""
    fingerprints = Counter(f[1] for f in snap["findings_lifecycle"])
    assert max(fingerprints.values()) == 1
    regs = Counter((r[0], r[2]) for r in snap["registrations"])
    assert regs and max(regs.values()) == 1, regs.most_common(3)
    engagements = Counter((r[3]["contributor_id"], r[3]["employer_id"])
                          for r in snap["registrations"] if r[0] == "engagement")
    assert max(engagements.values()) == 1, engagements.most_common(3)
    events = Counter((e[0], json.loads(e[2])["finding_id"]) for e in snap["outbox"])
    assert max(events.values()) == 1, events.most_common(3)
    audit = Counter((a[1], a[2]) for a in snap["audit"])
    assert max(audit.values()) == 1, audit.most_common(3)


# -- the reference: one uninterrupted run per database kind ----------------------------------


@pytest.fixture(scope="module")
def _references(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    cache: dict[str, Any] = {}
    yield cache
    for name in cache.get("pg_databases", []):
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def reference(database_url: str, inbox: Path, _references: dict[str, Any],
              tmp_path_factory: pytest.TempPathFactory) -> list[Snapshot]:
    """The state after one uninterrupted run, and after a second one. The second changes
    only the person index: the contributors the first run registered are records now."""
    kind = database_url.split(":", 1)[0].split("+", 1)[0]
    if kind not in _references:
        if kind == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('reference')}/reference.db"
        else:
            name = f"reconciler_test_{uuid.uuid4().hex[:12]}"
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
            _references.setdefault("pg_databases", []).append(name)
            url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        _migrate(url)
        report = run_once(url, inbox)
        assert report["findings"]["auto_registered"] >= 5, report["findings"]
        first = snapshot(url)
        assert first["audit_verify"][0] is True, first["audit_verify"]
        assert_no_duplicates(first)
        rerun(url, inbox)
        second = snapshot(url)
        assert run_statuses(url) == ["succeeded", "succeeded"]
        assert_same({**second, "person_records": {}}, {**first, "person_records": {}})
        assert set(second["person_records"]) > set(first["person_records"])
        _references[kind] = [first, second]
    refs: list[Snapshot] = _references[kind]
    return refs


# -- the crashes -------------------------------------------------------------------------------


def _left_by_pull(counts: dict[str, int], committed: int, at_most: int | None = None) -> None:
    """``committed`` deliveries (up to ``at_most`` for a free-running kill) and nothing of
    the one the kill interrupted: no quarantined row of an uncommitted delivery."""
    assert committed <= counts["deliveries"] <= (at_most or committed), counts
    assert counts["quarantine"] == counts["quarantined_by_deliveries"], counts
    assert counts["findings"] == counts["registrations"] == counts["outbox"] == 0, counts


def _nothing_reconciled(counts: dict[str, int]) -> None:
    _left_by_pull(counts, DELIVERIES)
    assert counts["audit_log"] == counts["person_records"] == 0, counts


def _reconciled(counts: dict[str, int]) -> None:
    assert counts["findings"] > 0 and counts["registrations"] > 0, counts
    assert counts["outbox"] > 0 and counts["person_records"] > 0, counts


Check = Callable[[dict[str, int]], None]

# kill point(s), "+" between successive kills → (what each killed run must have left
# behind, reconciles committed before the re-run). Files in pull order: registry
# contributors and engagements, employers, contracts (Oct, Nov), permits (Oct, Nov),
# payroll (Aug, Sep, Oct).
POINTS: dict[str, tuple[list[Check], int]] = {
    # pull, mid-delivery: after the 2nd of the 3 chunks (1,000 rows here) of the October
    # contracts, quarantined rows among those written; three files committed before it
    "chunk:8": ([lambda c: _left_by_pull(c, 3)], 0),
    # pull, free-running: killed the moment the 7th commit (November permits) is logged,
    # so in the 8th delivery (a loaded machine may let it commit first: not the last)
    "log:7": ([lambda c: _left_by_pull(c, 7, DELIVERIES - 1)], 0),
    # pull: the November contracts staged, not committed (their newer versions had retired
    # rows the October file committed: is_current = false); then the re-run killed in its
    # act, every decision — findings, history, registrations, events, audit, person
    # index — written in the unit of work, not committed
    "ingest:5+act": ([lambda c: _left_by_pull(c, 4), _nothing_reconciled], 0),
    # reconcile committed; the run killed before notifying, publishing, recording itself
    "notify": ([_reconciled], 1),
}


@pytest.mark.parametrize("point", list(POINTS))
def test_rerun_after_kill_ends_like_an_uninterrupted_run(
        point: str, database_url: str, inbox: Path, reference: list[Snapshot]) -> None:
    checks, committed = POINTS[point]
    kills = point.split("+")
    _migrate(database_url)
    for kill, left_behind in zip(kills, checks, strict=True):
        kill_at(database_url, inbox, kill)
        left_behind(_counts(database_url))

    rerun(database_url, inbox)
    after = snapshot(database_url)
    assert after["audit_verify"][0] is True, after["audit_verify"]
    assert_no_duplicates(after)
    # the first complete reconcile, or the second when the killed run had committed one
    assert_same(after, reference[committed])
    # a killed run is marked abandoned by the next run (its process is gone)
    assert run_statuses(database_url) == ["abandoned"] * len(kills) + ["succeeded"]

    # one more run: the steady state an uninterrupted run reaches on its second run
    again = rerun(database_url, inbox)
    assert all(v["deliveries"] == 0 for v in again.ingest.values()), again.ingest
    assert not any(again.findings[k] for k in ("opened", "updated", "reopened",
                                                  "resolved", "auto_registered"))
    assert_same(snapshot(database_url), reference[1])
