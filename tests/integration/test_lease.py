"""The scheduler lease on both databases: acquire, renew, release, races, the fence at
commit, the keeper's roles, and a daemon that lost its lease committing nothing."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import OperationalError

from reconciler.config import Schedule, Settings
from reconciler.daemon import Daemon, reconcile_due
from reconciler.health import SchedulerStatus
from reconciler.lease import Fence, LeaseKeeper, LeaseLost, SchedulerLease, read_lease
from reconciler.pipeline import Reconciler
from reconciler.storage import cursors, deliveries, pull_runs, runs, scheduler_lease

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def lease(engine: Engine, holder: str, ttl: float = 30.0) -> SchedulerLease:
    return SchedulerLease(engine, holder=holder, ttl_seconds=ttl)


def expire(engine: Engine) -> None:
    """Age the lease past its expiry, as a leader that stopped renewing would leave it."""
    with engine.begin() as conn:
        conn.execute(update(scheduler_lease).values(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)))


def test_one_holder_at_a_time_and_every_acquisition_is_a_new_epoch(engine: Engine) -> None:
    a, b = lease(engine, "a", ttl=0.5), lease(engine, "b", ttl=0.5)
    assert a.try_acquire() == 1  # the first row is inserted
    assert b.try_acquire() is None  # held and not expired
    assert a.renew(1)
    assert a.try_acquire() == 2  # our own row: taken again, but as a new reign
    assert not a.renew(1)  # the old epoch is gone
    time.sleep(0.6)
    assert b.try_acquire() == 3  # expired: taken over
    assert not a.renew(2)
    assert a.try_acquire() is None
    assert b.release(3)
    assert a.try_acquire() == 4  # released: nobody waits for the TTL
    row, now = a.current()
    assert row is not None and (row.holder, row.epoch) == ("a", 4)
    assert 0 < row.remaining(now) <= 0.5
    assert row.acquired_at == row.renewed_at


@pytest.mark.parametrize("candidates", [8])
def test_candidates_racing_for_the_lease_elect_exactly_one(engine: Engine,
                                                           candidates: int) -> None:
    # round 0: an empty table (the INSERT race, one primary-key violation per loser);
    # round 1: an expired row (the conditional UPDATE race)
    for round_ in range(2):
        barrier = threading.Barrier(candidates)
        won: dict[int, int | None] = {}

        def candidate(i: int, round_: int = round_, barrier: threading.Barrier = barrier,
                      won: dict[int, int | None] = won) -> None:
            contender = lease(engine, f"r{round_}-{i}", ttl=30)
            barrier.wait()
            won[i] = contender.try_acquire()

        threads = [threading.Thread(target=candidate, args=(i,)) for i in range(candidates)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        epochs = [epoch for epoch in won.values() if epoch is not None]
        assert len(won) == candidates and epochs == [round_ + 1], won
        with engine.connect() as conn:
            row = read_lease(conn)
        assert row is not None and row.epoch == round_ + 1
        assert row.holder == f"r{round_}-{next(i for i, e in won.items() if e is not None)}"
        expire(engine)


def _write(engine: Engine, connector: str) -> None:
    with engine.begin() as conn:
        conn.execute(insert(cursors).values(connector=connector, value="{}", updated_at=NOW))


def _written(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(cursors.c.connector)).scalars())


def test_the_fence_rolls_back_a_commit_made_after_a_takeover(engine: Engine) -> None:
    a, b = lease(engine, "a"), lease(engine, "b")
    fence = Fence(engine)
    try:
        epoch = a.try_acquire()
        assert epoch == 1
        with fence.guard("a", epoch):
            _write(engine, "while-leading")  # our lease: committed
        expire(engine)
        assert b.try_acquire() == 2
        with fence.guard("a", epoch), pytest.raises(LeaseLost, match="epoch 1 of a"):
            _write(engine, "stale")  # a stalled leader's commit is refused
        _write(engine, "desk")  # a thread that is not guarded (the desk) is not fenced
        with fence.guard("b", 2):
            _write(engine, "new-leader")
    finally:
        fence.close()
    assert _written(engine) == {"while-leading", "desk", "new-leader"}


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_takeover_during_an_open_transaction_fences_its_commit(engine: Engine) -> None:
    """PostgreSQL: the lease row is not locked while the work runs (renewals go on), only
    checked ``FOR SHARE`` at commit — so a takeover that commits first wins. (On SQLite the
    open transaction would hold the only write lock: no takeover can commit meanwhile.)"""
    a, b = lease(engine, "a"), lease(engine, "b")
    fence = Fence(engine)
    try:
        epoch = a.try_acquire()
        assert epoch == 1
        with fence.guard("a", epoch), pytest.raises(LeaseLost), engine.begin() as conn:
            conn.execute(insert(cursors).values(connector="open", value="{}", updated_at=NOW))
            expire(engine)  # other connections: the lease row is not locked by our work
            assert b.try_acquire() == 2
    finally:
        fence.close()
    assert _written(engine) == set()


def test_the_keeper_leads_stands_by_takes_over_on_release(engine: Engine) -> None:
    events: list[Any] = []
    ka = LeaseKeeper(lease(engine, "a"), 10, on_acquired=lambda e: events.append(("a+", e)),
                     on_lost=lambda r: events.append(("a-", r)))
    kb = LeaseKeeper(lease(engine, "b"), 10, on_acquired=lambda e: events.append(("b+", e)))
    assert ka.status().role == "none"  # not polled yet: not ready
    ka.tick()
    delay = kb.tick()
    assert ka.status() == SchedulerStatus("leader", None, "a", 1, "a")
    assert kb.status() == SchedulerStatus("standby", None, "b", None, "a")
    assert delay == 10  # the lease it saw lasts 30 s more: poll again in an interval
    ka.stop(release=True)
    assert ka.status().role == "none" and ka.status().reason == "stopped"
    kb.tick()
    assert kb.status().role == "leader" and kb.leader_epoch() == 2
    assert events == [("a+", 1), ("a-", "released"), ("b+", 2)]


def test_a_standby_polls_again_when_the_lease_it_saw_expires(engine: Engine) -> None:
    leader = lease(engine, "a", ttl=1.0)
    assert leader.try_acquire() == 1
    standby = LeaseKeeper(lease(engine, "b", ttl=1.0), renew_interval=10)
    delay = standby.tick()
    assert 0.05 <= delay <= 1.1  # not a whole interval: it sleeps until the expiry it saw
    time.sleep(delay)
    standby.tick()
    assert standby.leader_epoch() == 2


def test_a_leader_that_cannot_renew_steps_down_at_once_and_comes_back(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    lost: list[str] = []
    keeper = LeaseKeeper(lease(engine, "a"), 10, on_lost=lost.append)
    keeper.tick()
    assert keeper.leader_epoch() == 1

    def down(_epoch: int) -> bool:
        raise OperationalError("UPDATE scheduler_lease", {}, Exception("connection refused"))

    monkeypatch.setattr(keeper.lease, "renew", down)
    keeper.tick()
    status = keeper.status()
    assert status.role == "none" and keeper.leader_epoch() is None
    assert status.reason == "lease lost: database error while renewing: connection refused"
    assert len(lost) == 1
    monkeypatch.undo()
    keeper.tick()  # the database is back and nobody took over: ours again, a new epoch
    assert keeper.leader_epoch() == 2
    expire(engine)
    assert lease(engine, "b").try_acquire() == 3
    keeper.tick()
    status = keeper.status()
    assert status.role == "standby" and status.leader == "b"
    assert status.reason == "lease lost: taken over by b (epoch 3)"


def test_a_leader_trusts_its_lease_only_a_ttl_after_sending_the_renewal(
        engine: Engine) -> None:
    clock = [100.0]
    keeper = LeaseKeeper(lease(engine, "a", ttl=30), 10, clock=lambda: clock[0])
    keeper.tick()
    clock[0] += 29.9
    assert keeper.leader_epoch() == 1
    clock[0] += 0.2  # no renewal got through for a whole TTL: stop working
    assert keeper.leader_epoch() is None
    assert keeper.status() == SchedulerStatus("none", "lease lost: not renewed within its TTL",
                                              "a", None, "a")
    keeper.tick()  # the renewal gets through and nobody took over: the same reign goes on
    assert keeper.leader_epoch() == 1


def _daemon(database_url: str, inbox: Path, holder: str) -> Daemon:
    settings = Settings(database_url=database_url, inbox=inbox,
                        reconcile_schedule=Schedule(interval_seconds=60))
    daemon = Daemon(Reconciler.from_settings(settings, migrate=True), holder=holder)
    daemon._waiting = None  # the database is there: what start_scheduler() would say
    return daemon


def test_a_daemon_that_lost_its_lease_commits_nothing_and_stands_by(
        database_url: str, example_inbox: Path) -> None:
    daemon = _daemon(database_url, example_inbox, "a")
    engine = daemon.app.engine
    try:
        daemon.keeper.tick()
        assert daemon.scheduler_state().role == "leader"
        daemon.pull("employers")
        assert daemon.metrics.scheduler_jobs.labels("pull", "succeeded")._value.get() == 1
        # another replica takes over while this one still believes it leads (it stalled)
        expire(engine)
        assert lease(engine, "b").try_acquire() == 2
        assert daemon.keeper.leader_epoch() == 1
        daemon.pull("contracts")
        assert daemon.metrics.scheduler_jobs.labels("pull", "fenced")._value.get() == 1
        assert daemon.scheduler_state().role == "none"  # stepped down at once
        with engine.connect() as conn:
            assert set(conn.execute(select(deliveries.c.connector)).scalars()) == {"employers"}
            assert set(conn.execute(select(pull_runs.c.connector)).scalars()) == {"employers"}
        daemon.keeper.tick()
        state = daemon.scheduler_state()
        assert (state.role, state.leader) == ("standby", "b")
        daemon.pull("contracts")
        daemon.reconcile()
        skipped = daemon.metrics.scheduler_jobs.labels
        assert skipped("pull", "skipped")._value.get() == 1
        assert skipped("reconcile", "skipped")._value.get() == 1
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(runs)).scalar_one() == 0
    finally:
        daemon.fence.close()
        engine.dispose()


def test_the_leader_records_each_pull_and_reconcile_with_its_epoch(
        database_url: str, example_inbox: Path) -> None:
    daemon = _daemon(database_url, example_inbox, "a")
    engine = daemon.app.engine
    try:
        daemon.keeper.tick()
        for connector in daemon.app.settings.connectors:
            daemon.pull(connector.name)
        daemon.reconcile("after-pull")
        with engine.connect() as conn:
            pulls = conn.execute(select(pull_runs)).mappings().all()
            [run] = conn.execute(select(runs)).mappings().all()
        assert len(pulls) == 6
        assert {(p["holder"], p["epoch"], p["status"], p["trigger"]) for p in pulls} == {
            ("a", 1, "succeeded", "schedule")}
        assert sum(p["rows_new"] for p in pulls) == 19 and all(p["finished_at"] for p in pulls)
        assert run["status"] == "succeeded" and run["as_of"] is not None
        assert {k: run["stats"][k] for k in ("kind", "trigger", "holder", "epoch")} == {
            "kind": "daemon", "trigger": "after-pull", "holder": "a", "epoch": 1}
        assert run["stats"]["findings"]["opened"] == 2
    finally:
        daemon.fence.close()
        engine.dispose()


def _add_run(engine: Engine, started: datetime, status: str = "succeeded") -> None:
    with engine.begin() as conn:
        conn.execute(insert(runs).values(started_at=started, finished_at=started,
                                         as_of=date(2026, 11, 1), status=status, stats={}))


def test_a_new_leader_reconciles_only_what_is_due(engine: Engine) -> None:
    every_hour = Schedule(interval_seconds=3600)
    nightly = Schedule(cron="0 2 * * *")
    at = datetime(2026, 11, 2, 2, 5, tzinfo=UTC)
    with engine.connect() as conn:
        assert reconcile_due(conn, every_hour, at) == "no reconcile in the last 3600s"
        assert reconcile_due(conn, nightly, at) == "the 2026-11-02 02:00Z slot has no reconcile"
        # later than the misfire grace: the slot is not caught up (its next one will run)
        assert reconcile_due(conn, nightly, at + timedelta(minutes=10)) is None
    _add_run(engine, at - timedelta(minutes=4, seconds=59))  # the old leader ran 02:00:01
    _add_run(engine, at - timedelta(minutes=1), status="failed")
    with engine.connect() as conn:
        assert reconcile_due(conn, nightly, at) is None
        assert reconcile_due(conn, every_hour, at) is None
    with engine.begin() as conn:  # a delivery the last reconcile did not see
        conn.execute(insert(deliveries).values(
            connector="contracts", feed="contracts", source="x.csv", content_hash="0" * 64,
            received_at=at - timedelta(seconds=30)))
    with engine.connect() as conn:
        assert reconcile_due(conn, every_hour, at) == "data delivered since the last reconcile"


def test_the_lease_settings(tmp_path: Path) -> None:
    from reconciler.config import load_settings
    from reconciler.errors import ConfigError

    assert Settings().lease.ttl_seconds == 30 and Settings().lease.renew_interval == 10
    path = tmp_path / "c.yaml"
    path.write_text("lease: {ttl_seconds: 6, renew_seconds: 1.5}\n", encoding="utf-8")
    assert load_settings(path, env={}).lease.renew_interval == 1.5
    path.write_text("lease: {ttl_seconds: 6, renew_seconds: 6}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="renew_seconds must be shorter than ttl_seconds"):
        load_settings(path, env={})
