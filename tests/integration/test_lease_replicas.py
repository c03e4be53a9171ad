"""Two daemons — real ``reconciler run`` processes — on one database and one inbox: exactly
one leads, every pull and every reconcile happens once, and when the leader is SIGKILLed
the standby takes over within the lease TTL and carries on. SQLite (one file) and
PostgreSQL."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, func, select

from reconciler.storage import deliveries, pull_runs, runs, scheduler_lease
from tests.ops.daemons import (
    DaemonProcess,
    drop_contract,
    filedrop_connectors,
    utc,
    wait_until,
    write_config,
)

TTL = 3.0
def rows(engine: Engine, table: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).order_by(table.c.id)).mappings()]


def delivered(engine: Engine, source_name: str) -> dict[str, Any] | None:
    for row in rows(engine, deliveries):
        if row["source"].endswith(source_name):
            return row
    return None


def reconciled_after(engine: Engine, moment: datetime, holder: str) -> bool:
    return any(r["status"] == "succeeded" and utc(r["started_at"]) > moment
               and r["stats"].get("holder") == holder for r in rows(engine, runs))


def assert_never_overlapping(spans: list[tuple[datetime, datetime | None]], what: str) -> None:
    spans = sorted((utc(s), utc(f) if f else None) for s, f in spans)
    for (_, finished), (started, _) in itertools.pairwise(spans):
        assert finished is not None and finished <= started, f"two {what} overlapped"


def test_two_daemons_one_leader_work_once_and_failover_on_sigkill(
        env: dict[str, str], example_inbox: Path, tmp_path: Path) -> None:
    url = env["RECONCILER_DATABASE_URL"]
    subprocess.run([sys.executable, "-m", "reconciler.cli", "db", "upgrade"], check=True,
                   env={**os.environ}, capture_output=True)
    config = write_config(tmp_path / "daemon.yaml", connectors=filedrop_connectors(1),
                          reconcile_seconds=2, ttl_seconds=TTL)
    a = DaemonProcess("a", env, config, tmp_path).start()
    b = DaemonProcess("b", env, config, tmp_path)
    engine = create_engine(url)
    try:
        lead = a.wait_role("leader", 120)
        b.start()
        stand = b.wait_role("standby", 120)
        holder_a, holder_b = lead["lease"]["holder"], stand["lease"]["holder"]
        assert stand["lease"]["leader"] == holder_a and lead["lease"]["epoch"] == 1
        wait_until(lambda: reconciled_after(engine, datetime(2000, 1, 1, tzinfo=UTC),
                                            holder_a), 60, "the first reconcile")
        drop_contract(example_inbox, "contracts-2026-11.csv", "16000.00",
                      "2026-10-20T08:00:00Z")
        first = wait_until(lambda: delivered(engine, "contracts-2026-11.csv"), 30,
                           "the new file delivered")
        wait_until(lambda: reconciled_after(engine, utc(first["received_at"]), holder_a), 30,
                   "a reconcile after the new file")
        time.sleep(4)  # a few more slots: 1 s pulls, 2 s reconciles, on both replicas

        # -- one leader, and everything was done once, by it ----------------------------
        assert (a.role(), b.role()) == ("leader", "standby")
        assert a.metric("reconciler_scheduler_role", role="leader") == 1
        assert b.metric("reconciler_scheduler_role", role="standby") == 1
        assert b.metric("reconciler_scheduler_jobs_total", job="pull", outcome="skipped")
        assert b.metric("reconciler_scheduler_jobs_total", job="reconcile",
                        outcome="skipped")
        for outcome in ("succeeded", "failed", "fenced"):
            for job in ("pull", "reconcile"):
                assert b.metric("reconciler_scheduler_jobs_total", job=job,
                                outcome=outcome) == 0
        pulls = rows(engine, pull_runs)
        reconciles = rows(engine, runs)
        assert {p["holder"] for p in pulls} == {holder_a}
        assert {r["stats"]["holder"] for r in reconciles} == {holder_a}
        assert_never_overlapping([(p["started_at"], p["finished_at"]) for p in pulls],
                                 "pulls")
        assert_never_overlapping([(r["started_at"], r["finished_at"]) for r in reconciles],
                                 "reconciles")
        # once per slot: as many scheduled runs as the leader's slots in that span, not
        # twice as many (a second scheduler doing the work would double them)
        def at_most_one_per_slot(starts: list[datetime], interval: float, what: str) -> None:
            span = (max(starts) - min(starts)).total_seconds()
            assert 3 <= len(starts) <= span / interval + 2, (what, len(starts), span)

        by_connector: dict[str, list[datetime]] = defaultdict(list)
        for p in pulls:
            if p["trigger"] == "schedule":
                by_connector[p["connector"]].append(utc(p["started_at"]))
        assert len(by_connector) == 6
        for connector, starts in by_connector.items():
            at_most_one_per_slot(starts, 1, connector)
        at_most_one_per_slot([utc(r["started_at"]) for r in reconciles
                              if r["stats"]["trigger"] == "schedule"], 2, "reconcile")
        files = sorted(example_inbox.rglob("*.csv"))
        stored = rows(engine, deliveries)
        assert len(stored) == len(files) == 7
        assert len({d["content_hash"] for d in stored}) == 7

        # -- SIGKILL the leader: the standby takes over within the TTL ------------------
        a.kill()
        killed = time.monotonic()
        took = b.wait_role("leader", TTL + 10)
        waited = time.monotonic() - killed
        # the bound is the TTL from the leader's last renewal; 1.5 s of slack for the probe
        # polling and a loaded machine
        assert waited <= TTL + 1.5, f"standby took {waited:.1f}s to take over"
        assert took["lease"] == {"holder": holder_b, "epoch": 2, "leader": holder_b}
        drop_contract(example_inbox, "contracts-2026-12.csv", "17000.00",
                      "2026-10-25T08:00:00Z")
        second = wait_until(lambda: delivered(engine, "contracts-2026-12.csv"), 30,
                            "the file dropped after the failover")
        wait_until(lambda: reconciled_after(engine, utc(second["received_at"]), holder_b), 30,
                   "the new leader's reconcile")
        after = [p for p in rows(engine, pull_runs) if p["holder"] == holder_b]
        assert after and {p["epoch"] for p in after} == {2}
        assert any(p["trigger"] == "takeover" for p in after)
        assert b.metric("reconciler_scheduler_leadership_changes_total",
                        change="acquired") == 1
        assert b.metric("reconciler_scheduler_lease_epoch") == 2
        stored = rows(engine, deliveries)
        assert len(stored) == 8 and len({d["content_hash"] for d in stored}) == 8
        assert b.terminate() == 0
        with engine.connect() as conn:
            lease = conn.execute(select(scheduler_lease)).mappings().one()
            count = conn.execute(select(func.count()).select_from(runs)
                                 .where(runs.c.status == "running")).scalar_one()
        assert lease["holder"] == holder_b and lease["epoch"] == 2
        assert utc(lease["expires_at"]) <= datetime.now(UTC)  # released on the way out
        # the killed leader may have left one run marked running; the clean exit left none
        assert count <= 1
    finally:
        a.kill()
        b.kill()
        engine.dispose()
