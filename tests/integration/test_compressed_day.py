"""A compressed day: the daemon (a real ``reconciler run`` process) on PostgreSQL pulls a
partner's REST API every second and the inbox every two, reconciling every two seconds,
for half a minute while the partner keeps adding and changing contracts and misbehaving —
slow pages, 500s, 429s with ``Retry-After``, malformed pages, connections dropped mid-body.

At the end every version the partner served is stored exactly once — the last version of
every contract is the current one, nothing is lost, nothing duplicated, nothing invented —
every row that broke the contract is in quarantine exactly once, and a reconcile ran after
the last delivery. Runs in CI like any other test (no skip, no slow marker)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select

from reconciler.storage import deliveries, pull_runs, quarantine, runs, source_records
from tests.connectors.partner_api import PartnerServer, iso, serve_partner
from tests.ops.daemons import (
    PARTNER_TOKEN,
    DaemonProcess,
    filedrop_connectors,
    partner_contract,
    rest_connector,
    utc,
    wait_until,
    write_config,
)

DAY_SECONDS = 25
FAULTS = ("slow", "500", "429", "malformed", "drop")


class BusyPartner:
    """Changes the partner's data on a clock of its own: every change gets a `modifiedAt`
    later than every one before (two new contracts share one, to exercise the tie-break),
    and remembers every version it ever served."""

    def __init__(self, server: PartnerServer) -> None:
        self.server = server
        self.clock = datetime(2026, 10, 1, tzinfo=UTC)
        self.versions: dict[str, set[str]] = {}  # key -> every modifiedAt it had
        self.final: dict[str, dict[str, Any]] = {}  # key -> its last row
        self.invalid: set[str] = set()
        self.changes = 0
        self.steps = 0
        self.faults = 0
        self.stop = threading.Event()

    def tick(self) -> str:
        self.clock += timedelta(seconds=1)
        return iso(self.clock)

    def put(self, row: dict[str, Any]) -> None:
        self.versions.setdefault(row["id"], set()).add(row["modifiedAt"])
        self.final[row["id"]] = row
        self.server.state.put(row)
        self.changes += 1

    def step(self) -> None:
        self.steps += 1
        n = self.steps
        at = self.tick()
        for suffix in ("a", "b"):  # two new contracts at the same instant
            self.put(partner_contract(f"K{n:04d}{suffix}", at, 3000.0 + n))
        if n % 2 == 0 and n >= 4:  # a raise for an older contract: a new version
            key = f"K{n // 2:04d}a"
            self.put(partner_contract(key, self.tick(), self.final[key]["wage"] + 100))
        if n % 7 == 0:  # a contract in a state the contract does not know: quarantined
            key = f"Q{n:04d}"
            self.invalid.add(key)
            self.put(partner_contract(key, self.tick(), 1000.0, state="PENDING"))

    def run(self) -> None:
        while not self.stop.wait(0.25):
            self.step()
            n = self.steps
            state = self.server.state
            with state.lock:
                # a fault on one of the next requests once the last one fired, each kind in
                # turn: spread over the day however fast the daemon asks (a loaded machine)
                if n % 4 == 0 and not state.faults:
                    state.faults[len(state.requests) + 2] = FAULTS[self.faults % len(FAULTS)]
                    self.faults += 1


def stored_versions(engine: Engine) -> list[tuple[str, str, bool, float]]:
    with engine.connect() as conn:
        rows = conn.execute(select(source_records.c.record_key, source_records.c.updated_at,
                                   source_records.c.is_current, source_records.c.basic_wage)
                            .where(source_records.c.feed == "contracts",
                                   source_records.c.record_key.like("K%"))).all()
    return [(key, iso(utc(at)), bool(current), float(wage)) for key, at, current, wage in rows]


def caught_up(engine: Engine, busy: BusyPartner) -> bool:
    current = {key: at for key, at, is_current, _ in stored_versions(engine) if is_current}
    with engine.connect() as conn:
        quarantined = conn.execute(select(func.count()).select_from(quarantine)).scalar_one()
    valid = {k: r["modifiedAt"] for k, r in busy.final.items() if k not in busy.invalid}
    return current == valid and quarantined >= len(busy.invalid)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_compressed_day_against_a_faulty_partner(env: dict[str, str], tmp_path: Path,
                                                   database_url: str) -> None:
    server_iter = serve_partner()
    server = next(server_iter)
    busy = BusyPartner(server)
    for _ in range(20):  # yesterday's contracts
        busy.step()
    connectors = [*filedrop_connectors(2),
                  rest_connector(server.url, 1, page_size=7, timeout_seconds=0.5,
                                 max_attempts=4, backoff_seconds=0.05,
                                 max_backoff_seconds=3)]
    config = write_config(tmp_path / "daemon.yaml", connectors=connectors,
                          reconcile_seconds=2, ttl_seconds=3)
    subprocess.run([sys.executable, "-m", "reconciler.cli", "db", "upgrade"], check=True,
                   env={**os.environ}, capture_output=True)
    daemon = DaemonProcess("day", {**env, "PARTNER_TOKEN": PARTNER_TOKEN}, config, tmp_path)
    engine = create_engine(database_url)
    writer = threading.Thread(target=busy.run, daemon=True)
    try:
        daemon.start()
        daemon.wait_role("leader", 120)
        started = time.monotonic()
        writer.start()
        time.sleep(DAY_SECONDS)
        busy.stop.set()
        writer.join(timeout=10)
        with server.state.lock:
            server.state.faults.clear()  # the partner behaves again: the daemon catches up
        wait_until(lambda: caught_up(engine, busy), 90, "the daemon to catch up")
        day = time.monotonic() - started
        with engine.connect() as conn:
            last_delivery = utc(conn.execute(select(func.max(deliveries.c.received_at)))
                                .scalar_one())

        def reconciled() -> bool:
            with engine.connect() as conn:
                return bool(conn.execute(select(func.count()).select_from(runs).where(
                    runs.c.status == "succeeded", runs.c.started_at > last_delivery))
                    .scalar_one())

        wait_until(reconciled, 60, "a reconcile after the last delivery")

        # -- every version served is stored once; the last one is current ---------------------
        versions = stored_versions(engine)
        counted = Counter((key, at) for key, at, _, _ in versions)
        assert [v for v, n in counted.items() if n > 1] == []  # nothing duplicated
        served = {(k, at) for k, ats in busy.versions.items() for at in ats}
        assert set(counted) <= served  # nothing invented
        current = {key: (at, wage) for key, at, is_current, wage in versions if is_current}
        valid = {k: r for k, r in busy.final.items() if k not in busy.invalid}
        assert set(current) == set(valid)  # nothing lost
        assert all(current[k] == (r["modifiedAt"], r["wage"]) for k, r in valid.items())
        # a version replaced before any pull saw it was never served to the daemon; every
        # version it did see is kept as history
        assert len(versions) >= len(valid)
        # -- every broken row quarantined exactly once ------------------------------------
        with engine.connect() as conn:
            raws = conn.execute(select(quarantine.c.raw, quarantine.c.reason)).all()
        quarantined = Counter(raw["contract_id"] for raw, _ in raws)
        assert set(quarantined) == busy.invalid and set(quarantined.values()) == {1}
        assert all("status" in reason for _, reason in raws)
        # -- the faults happened, and the daemon lived through them -----------------------
        statuses = Counter(status for _, _, status in server.state.fired())
        assert statuses[500] >= 1 and statuses[429] >= 1 and statuses[200] > 20
        retried = " ".join(str(line.get("error")) for line in daemon.lines()
                           if line.get("message") == "retrying after a passing fault")
        for fault in ("answered 500", "answered 429", "timed out", "connection failed"):
            assert fault in retried, fault  # slow page, 500, 429, dropped connection
        with engine.connect() as conn:
            pulls = conn.execute(select(pull_runs.c.status, pull_runs.c.error)
                                 .where(pull_runs.c.connector == "partner")).all()
        outcomes = Counter(status for status, _ in pulls)
        assert outcomes["succeeded"] > 5, outcomes
        assert any("malformed page" in (error or "") for _, error in pulls), outcomes
        assert daemon.metric("reconciler_connector_errors_total", connector="partner",
                             kind="skippable")
        assert daemon.metric("reconciler_scheduler_jobs_total", job="reconcile",
                             outcome="succeeded") >= DAY_SECONDS / 4  # type: ignore[operator]
        ready = daemon.readyz()
        assert ready is not None and ready[0] == 200 and ready[1]["scheduler"] == "leader"
        assert busy.changes > 100 and busy.faults >= len(FAULTS) and day < 150
        assert daemon.terminate() == 0
    finally:
        busy.stop.set()
        daemon.kill()
        engine.dispose()
        server_iter.close()
