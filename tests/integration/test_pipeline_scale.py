"""The pipeline's bulk paths give what the plain ones gave, on SQLite and PostgreSQL.

The load reads frames column-wise from the driver's cursor (``registry.read_frame``), the
person views are built column-wise, the act registers in one call and writes its changes
in bulk, the person index is saved as a diff, and ``runs`` rows of killed runs are marked
``abandoned``. Each is checked here against the straightforward way of doing the same on a
generated world (2,000 workers), or against hand-made rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, func, insert, inspect, select, update

from reconciler import pipeline
from reconciler.actions import ID_KINDS, PersonView, person_views
from reconciler.config import load_settings
from reconciler.identity.resolve import IdentityResolver, Person
from reconciler.pipeline import (
    PARTNER_COLUMNS,
    IndexChanges,
    Reconciler,
    RunRecord,
    _identity_records,
    _index_changes,
    _partner_frame,
    _person_index,
    _save_person_index,
    reap_abandoned_runs,
    run_process,
)
from reconciler.registry import EmbeddedRegistry, NewContributor, RegistrationRequest, read_frame
from reconciler.storage import (
    audit_log,
    finding_history,
    findings,
    outbox,
    person_records,
    registrations,
    runs,
    source_records,
)
from reconciler.synth.world import WorldSpec, generate_world, write_world

AS_OF = date(2026, 11, 1)


@pytest.fixture(scope="module")
def inbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("world")
    write_world(generate_world(WorldSpec(workers=2000, seed=5, as_of=AS_OF)),
                root / "inbox", root / "truth")
    return root / "inbox"


@pytest.fixture
def app(engine: Engine, inbox: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Reconciler]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    env.update(RECONCILER_DATABASE_URL=engine.url.render_as_string(hide_password=False),
               RECONCILER_INBOX=str(inbox), RECONCILER_AS_OF=AS_OF.isoformat())
    reconciler = Reconciler.from_settings(load_settings(env=env), migrate=True)
    yield reconciler
    reconciler.engine.dispose()


# -- load ------------------------------------------------------------------------------------


def _plain_frame(conn: Any, stmt: Any) -> pd.DataFrame:
    """What read_frame replaces: SQLAlchemy rows into a DataFrame."""
    return pd.DataFrame(conn.execute(stmt).all(),
                        columns=[c.key for c in stmt.selected_columns])


def test_frames_read_column_wise_equal_the_row_wise_ones(app: Reconciler) -> None:
    app.run_once()
    t = source_records
    with app.engine.connect() as conn:
        for feed, cols in {**PARTNER_COLUMNS, "contributors": ["contributor_id", "sex"],
                           "engagements": ["start_date", "registered_on",
                                           "contributory_wage", "status"]}.items():
            stmt = (select(t.c.record_key, t.c.national_id, t.c.updated_at,
                           *[t.c[c] for c in cols if c not in ("updated_at",)])
                    .where(t.c.feed == feed, t.c.is_current).order_by(t.c.id))
            want = _plain_frame(conn, stmt)
            got = read_frame(conn, stmt, distinct=("record_key",))
            assert len(got) > 100
            pd.testing.assert_frame_equal(got, want, check_exact=True)
        stmt = select(*[c for c in findings.c if c.key not in ("worker", "evidence",
                                                                 "details")])
        pd.testing.assert_frame_equal(read_frame(conn, stmt), _plain_frame(conn, stmt),
                                      check_exact=True)
        # nothing selected: the columns, no rows
        empty = select(t.c.record_key, t.c.start_date).where(t.c.feed == "none")
        pd.testing.assert_frame_equal(read_frame(conn, empty), _plain_frame(conn, empty),
                                      check_exact=True)
        # equal text values are one object (memory), keys are not shared
        payroll = _partner_frame(conn, "payroll", PARTNER_COLUMNS["payroll"])
        employers = payroll["employer_id"].to_numpy()
        assert len({id(v) for v in employers}) == len(set(employers))
        # the registry through its own reads equals a row-wise read of the same rows
        registry = EmbeddedRegistry()
        some = list(registry.contributors(conn)["contributor_id"][:40])
        assert len(registry.engagements_of(conn, some)) >= 40


# -- person views ----------------------------------------------------------------------------


def _reference_views(records: pd.DataFrame, persons: Mapping[str, Person],
                     wanted: set[str]) -> dict[str, PersonView]:
    """The row-by-row summary that person_views replaces."""
    def present(value: object) -> bool:
        return value is not None and value == value and value != ""

    priority = {"permits": 0, "contracts": 1, "payroll": 2, "contributors": 3}
    sub = records[records["person_id"].isin(wanted)].copy()
    sub["_prio"] = sub["feed"].map(priority).fillna(9)
    sub = sub.sort_values(["person_id", "_prio", "updated_at"], ascending=[True, True, False],
                          na_position="last")
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in sub.drop(columns="_prio").to_dict("records"):
        grouped[str(record["person_id"])].append(record)
    views = {}
    for pid, rows in grouped.items():
        worker: dict[str, Any] = {"contributor_id": None, "contributor_ids": []}
        for kind in ID_KINDS:
            worker[kind] = next((r[kind] for r in rows if present(r.get(kind))
                                 and kind not in str(r.get("invalid_ids") or "")), None)
        contributor_rows = [r for r in rows if r["feed"] == "contributors"]
        cids = sorted(str(r["key"]) for r in contributor_rows)
        worker["contributor_ids"] = cids
        worker["contributor_id"] = cids[0] if cids else None
        name_rows = contributor_rows or rows
        worker["name_en"] = next((r["name_en"] for r in name_rows if r.get("name_en")), None)
        identity = {kind: worker[kind] for kind in ID_KINDS} | {
            col: next((r[col] for r in rows if present(r.get(col))), None)
            for col in ("nationality", "name_en", "name_ar", "date_of_birth", "sex")}
        views[pid] = PersonView(persons[pid], worker, cids, identity)
    return views


def test_person_views_equal_the_row_by_row_summary(app: Reconciler) -> None:
    app.run_once()
    with app.engine.connect() as conn:
        partner = {f: _partner_frame(conn, f, c) for f, c in PARTNER_COLUMNS.items()}
        records = _identity_records(partner, app.registry.contributors(conn),
                                    app.registry.engagements(conn))
        previous = _person_index(conn)
    resolution = IdentityResolver().resolve(records, previous)
    records["person_id"] = records["ref"].map(resolution.person_of)
    wanted = set(list(resolution.persons)[::3])
    got = person_views(records, resolution.persons, wanted)
    want = _reference_views(records, resolution.persons, wanted)
    assert got.keys() == want.keys() == wanted
    for pid, view in want.items():
        assert list(got[pid].worker.items()) == list(view.worker.items()), pid
        assert list(got[pid].identity.items()) == list(view.identity.items()), pid
        assert got[pid].contributor_ids == view.contributor_ids
        assert got[pid].person is view.person
    assert person_views(records, resolution.persons, set()) == {}


# -- act -------------------------------------------------------------------------------------


def _table_rows(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        out: dict[str, Any] = {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (audit_log, outbox, finding_history, registrations, person_records)}
        out["findings"] = sorted(tuple(str(v) for v in r) for r in conn.execute(
            select(findings)).all())
        out["person_index"] = dict(conn.execute(
            select(person_records.c.record_ref, person_records.c.person_id)).all())
    return out


def test_a_run_over_unchanged_data_writes_nothing(app: Reconciler) -> None:
    first = app.run_once()
    assert first.findings["opened"] > 100 and first.findings["auto_registered"] > 5
    app.run_once()  # the contributors registered by the first run become records
    before = _table_rows(app.engine)
    again = app.run_once()
    assert again.findings["opened"] == again.findings["updated"] == 0
    assert again.findings["resolved"] == again.findings["reopened"] == 0
    assert _table_rows(app.engine) == before


def test_lifecycle_changes_are_written_in_bulk(app: Reconciler) -> None:
    """Officers' statuses and changed evidence, then a later as-of: reopened, updated,
    resolved and seen findings are written as one statement per kind of change."""
    app.run_once()
    with app.engine.begin() as conn:
        ids = list(conn.execute(select(findings.c.finding_id, findings.c.status)
                                .order_by(findings.c.finding_id)).all())
        open_ids = [i for i, s in ids if s == "open"]
        dismissed, officer_resolved = open_ids[:30], open_ids[30:60]
        conn.execute(update(findings).where(findings.c.finding_id.in_(dismissed))
                     .values(status="dismissed"))
        conn.execute(update(findings).where(findings.c.finding_id.in_(officer_resolved))
                     .values(status="resolved", resolution="officer"))
        payroll = [i for (i,) in conn.execute(select(source_records.c.id).where(
            source_records.c.feed == "payroll", source_records.c.is_current))]
        conn.execute(update(source_records).where(source_records.c.id.in_(payroll[::7]))
                     .values(is_current=False))
        # the evidence of some missing registrations withdrawn: their condition clears
        missing = conn.execute(select(findings.c.evidence).where(
            findings.c.rule == "missing_registration", findings.c.status == "open")).all()
        for (evidence,) in missing[::4]:
            for ref in evidence:
                conn.execute(update(source_records).where(
                    source_records.c.feed == ref["feed"],
                    source_records.c.record_key == ref["key"]).values(is_current=False))
    later = date(2026, 12, 1)
    report = app.reconcile(later)
    stats = report.findings
    assert stats["reopened"] >= 30  # every officer-resolved finding that still holds
    assert stats["resolved"] > 0 and stats["updated"] > 0
    with app.engine.connect() as conn:
        rows = {r.finding_id: r for r in conn.execute(select(findings)).all()}
        history = conn.execute(select(func.count()).select_from(finding_history)
                               .where(finding_history.c.to_status == "open",
                                      finding_history.c.from_status == "resolved")
                               ).scalar_one()
    assert history == stats["reopened"] - sum(
        1 for i in dismissed if rows[i].status == "open")
    seen = [r for r in rows.values() if r.status == "open"]  # hit by this run
    assert seen and all(str(r.last_seen_as_of) == later.isoformat() for r in seen)
    assert all(r.resolution == "condition_cleared" for r in rows.values()
               if r.status == "resolved" and r.resolved_at is not None
               and r.resolution not in ("auto_registered", "officer"))
    # and the chain still verifies
    from reconciler.audit import verify

    with app.engine.connect() as conn:
        ok, _, message = verify(conn)
    assert ok, message
    # a second reconcile at the same date changes nothing more
    again = app.reconcile(later).findings
    assert again["opened"] == again["reopened"] == again["resolved"] == 0


def test_registering_many_mints_the_ids_of_one_by_one(engine: Engine) -> None:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    person = NewContributor("2000000007", None, None, None, "IND", "A B", None, "1990-01-01",
                            "M")
    requests = [RegistrationRequest(
        employer_id=f"70000000{i:02d}", start_date=date(2026, 1, i + 1), registered_on=AS_OF,
        contributory_wage=1000.0 + i, occupation_code=None, finding_id=f"f{i}",
        **({"contributor_id": f"C{i}"} if i % 2 else {"new_contributor": person}))
        for i in range(7)]
    registry = EmbeddedRegistry()

    def minted() -> list[tuple[str, str, Any]]:
        with engine.connect() as conn:
            return [(r.kind, r.record_id, r.payload) for r in conn.execute(
                select(registrations).order_by(registrations.c.id))]

    with engine.begin() as conn:
        one_by_one = [registry.register(conn, r, now) for r in requests]
    want = minted()
    with engine.begin() as conn:
        conn.execute(registrations.delete())
    with engine.begin() as conn:
        many = registry.register_many(conn, requests, now)
    assert many == one_by_one
    assert minted() == want
    assert [k for k, _, _ in want].count("contributor") == 4
    with engine.begin() as conn:  # numbering goes on from the highest minted
        assert registry.register(conn, requests[0], now).engagement_id == "RG00000008"


def test_the_person_index_is_saved_as_a_diff(engine: Engine,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "BULK_INDEX_ROWS", 1000)  # the first save: a bulk one

    def indexes() -> list[str]:
        with engine.connect() as conn:
            return sorted(str(ix["name"]) for ix in inspect(conn).get_indexes("person_records"))

    expected_indexes = indexes()
    assert expected_indexes == ["ix_person_records_person_id"]

    def stored() -> dict[str, str]:
        with engine.connect() as conn:
            return dict(conn.execute(select(person_records.c.record_ref,
                                            person_records.c.person_id)).all())

    def save(previous: dict[str, str], current: dict[str, Any]) -> IndexChanges:
        refs = np.array(list(current), dtype=object)
        ids = np.array(list(current.values()), dtype=object)
        changes = _index_changes(dict(previous), refs, ids)
        with engine.begin() as conn:
            _save_person_index(conn, changes)
        return changes

    first = {f"payroll:{i:06d}": f"P{i // 3:05d}" for i in range(3000, 0, -1)}
    changes = save({}, first)
    assert changes.bulk and stored() == first
    assert indexes() == expected_indexes  # dropped for the insert, built again
    class Crash(Exception):
        pass

    refs = np.array([f"permits:{i}" for i in range(2000)], dtype=object)
    bulk = _index_changes({}, refs, np.array(["PX"] * 2000, dtype=object))
    assert bulk.bulk
    for write_first in (True, False):  # a bulk save that never commits
        with pytest.raises(Crash), engine.begin() as conn:
            if write_first:  # as the act does (the audit chain's lock)
                conn.execute(person_records.delete().where(person_records.c.record_ref == ""))
            _save_person_index(conn, bulk)
            raise Crash
        assert indexes() == expected_indexes and stored() == first
    assert [ref for ref, _ in changes.added()] == sorted(first)  # in key order
    second: dict[str, Any] = {ref: pid for ref, pid in first.items() if not ref.endswith("7")}
    second.update({f"payroll:{i:06d}": "PMOVED" for i in range(1, 3000, 11)})
    second.update({f"contracts:{i}": "PNEW" for i in range(50)})
    second["payroll:000002"] = np.nan  # not resolved: not in the index
    with engine.connect() as conn:
        assert _person_index(conn) == first
    changes = save(first, second)
    assert not changes.bulk
    assert stored() == {ref: pid for ref, pid in second.items() if isinstance(pid, str)}
    assert len(changes.added()) == 50
    assert sorted(changes.moved) == sorted(
        (pid, ref) for ref, pid in second.items()
        if isinstance(pid, str) and ref in first and first[ref] != pid)
    assert sorted(changes.gone) == sorted(
        (ref,) for ref in first if not isinstance(second.get(ref), str))
    unchanged = save(stored(), {ref: pid for ref, pid in second.items()
                                if isinstance(pid, str)})
    assert (unchanged.gone, unchanged.moved, unchanged.added()) == ([], [], [])


# -- runs killed without a word --------------------------------------------------------------


@dataclass
class Row:
    id: int
    status: str
    stats: dict[str, Any]


def _runs(engine: Engine) -> list[Row]:
    with engine.connect() as conn:
        return [Row(r.id, r.status, r.stats or {}) for r in conn.execute(
            select(runs.c.id, runs.c.status, runs.c.stats).order_by(runs.c.id))]


def _running(engine: Engine, started: datetime, **stats: Any) -> int:
    with engine.begin() as conn:
        return int(conn.execute(insert(runs).values(
            started_at=started, as_of=AS_OF, status="running", stats=stats)
            .returning(runs.c.id)).scalar_one())


def _dead_pid() -> int:
    """The PID of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_runs_whose_process_is_gone_are_abandoned(engine: Engine) -> None:
    now = datetime.now(UTC)
    me = run_process()
    dead = _running(engine, now, process={**me, "pid": _dead_pid(), "pid_start": "1"},
                    heartbeat_at=now.isoformat())
    reused = _running(engine, now, process={**me, "pid_start": "not my start"},
                      heartbeat_at=now.isoformat())
    alive = _running(engine, now - timedelta(hours=5), process=me,
                     heartbeat_at=(now - timedelta(minutes=1)).isoformat())
    hung = _running(engine, now - timedelta(hours=5), process=me,
                    heartbeat_at=(now - timedelta(hours=4)).isoformat())
    elsewhere = _running(engine, now - timedelta(hours=1),
                         process={**me, "host": "another-host", "pid": 1},
                         heartbeat_at=(now - timedelta(minutes=5)).isoformat())
    silent = _running(engine, now - timedelta(hours=9),
                      process={**me, "host": "another-host", "pid": 1},
                      heartbeat_at=(now - timedelta(hours=3)).isoformat())
    legacy_old = _running(engine, now - timedelta(hours=3))
    legacy_new = _running(engine, now - timedelta(minutes=10))
    with engine.begin() as conn:
        conn.execute(insert(runs).values(started_at=now, finished_at=now, as_of=AS_OF,
                                         status="succeeded", stats={}))

    run = RunRecord.start(engine, AS_OF)
    statuses = {r.id: r.status for r in _runs(engine)}
    assert statuses == {dead: "abandoned", reused: "abandoned", alive: "running",
                        hung: "abandoned",
                        elsewhere: "running", silent: "abandoned", legacy_old: "abandoned",
                        legacy_new: "running", legacy_new + 1: "succeeded",
                        run.run_id: "running"}
    by_id = {r.id: r for r in _runs(engine)}
    assert "is gone" in by_id[dead].stats["abandoned"]["reason"]
    assert "no sign of life" in by_id[silent].stats["abandoned"]["reason"]
    assert by_id[run.run_id].stats["process"] == me

    run.beat("load")
    assert _runs(engine)[-1].stats["stage"] == "load"
    run.finish("succeeded", {"timings": {"load": 1.0}})
    last = _runs(engine)[-1]
    assert last.status == "succeeded" and last.stats["timings"] == {"load": 1.0}
    assert "stage" not in last.stats and last.stats["process"] == me
    with engine.begin() as conn:  # nothing left to mark
        assert reap_abandoned_runs(conn, datetime.now(UTC)) == []


def test_a_live_run_wrongly_marked_puts_its_status_back(engine: Engine) -> None:
    """A stage silent for longer than ``stale_after`` gets its live run marked; the run
    says how it ended all the same."""
    run = RunRecord.start(engine, AS_OF)
    with engine.begin() as conn:
        assert reap_abandoned_runs(conn, datetime.now(UTC) + timedelta(minutes=30)) == []
        marked = reap_abandoned_runs(conn, datetime.now(UTC) + timedelta(hours=3),
                                     stale_after=timedelta(hours=2))
    assert marked == [run.run_id]
    assert _runs(engine)[-1].status == "abandoned"
    run.finish("succeeded", {})
    assert _runs(engine)[-1].status == "succeeded"


def test_run_once_marks_a_killed_run_abandoned(app: Reconciler) -> None:
    """A ``run --once`` killed with SIGKILL leaves ``running``; the next run says what it
    was. (tests/integration/test_crash.py kills real runs at every point.)"""
    killed = _running(app.engine, datetime.now(UTC),
                      process={**run_process(), "pid": _dead_pid()},
                      heartbeat_at=datetime.now(UTC).isoformat())
    app.run_once()
    rows = _runs(app.engine)
    assert [(r.id, r.status) for r in rows] == [(killed, "abandoned"),
                                                (killed + 1, "succeeded")]
    assert set(rows[-1].stats["timings"]) >= {"load", "act"}


def test_run_once_reports_each_stage_time_and_peak_memory(app: Reconciler) -> None:
    """The run's report and its runs row say, per stage, how long it took and the process's
    peak resident memory when it ended — a high-water mark, so it never falls, and the
    stage where it reaches the run's peak is the one that set it (benchmarks/README.md)."""
    report = app.run_once()
    assert list(report.peak_mib) == list(report.timings)
    peaks = list(report.peak_mib.values())
    assert peaks[0] > 0 and peaks == sorted(peaks)
    assert _runs(app.engine)[-1].stats["peak_mib"] == report.peak_mib
