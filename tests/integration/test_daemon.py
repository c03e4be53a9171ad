"""The daemon as an operator runs it: a real process, real schedules, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from reconciler.storage import cursors, deliveries, findings, pull_runs, scheduler_lease
from tests.connectors.partner_api import PartnerServer, serve_partner
from tests.ops.daemons import (
    PARTNER_TOKEN,
    DaemonProcess,
    partner_contract,
    rest_connector,
    wait_until,
    write_config,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_daemon_pulls_reconciles_and_stops_cleanly_on_sigterm(
        env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = env["RECONCILER_DATABASE_URL"]
    port = _free_port()
    monkeypatch.setenv("RECONCILER_HTTP_PORT", str(port))
    subprocess.run([sys.executable, "-m", "reconciler.cli", "db", "upgrade"], check=True,
                   env={**os.environ}, capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "reconciler.cli", "run"],
                            env={**os.environ}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    engine = create_engine(url)
    try:
        deadline = time.monotonic() + 90
        count = 0
        while time.monotonic() < deadline and proc.poll() is None:
            with engine.connect() as conn:
                try:
                    count = conn.execute(select(func.count()).select_from(findings)).scalar_one()
                except Exception:  # table not there yet
                    count = 0
            if count == 2:
                break
            time.sleep(0.5)
        assert count == 2, proc.stderr.read() if proc.poll() is not None else "no findings"
        # the daemon serves its health and metrics beside the desk
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        ready = httpx.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        assert 'reconciler_rows_pulled_total{connector="contracts"' in metrics
        assert "reconciler_auto_registrations_total" in metrics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        engine.dispose()
    assert '"stopped"' in proc.stderr.read()


@pytest.fixture
def partner() -> Iterator[PartnerServer]:
    yield from serve_partner()


def test_sigterm_finishes_the_delivery_in_progress_and_exits_0_within_the_grace(
        env: dict[str, str], partner: PartnerServer, tmp_path: Path) -> None:
    """A REST pull of ten pages, each answered in a second: SIGTERM lands while a page is
    being fetched. That page is staged (the unit of work in progress), the pull stops
    before the next one, the lease is released, and the process exits 0 well inside a 10 s
    grace period."""
    state = partner.state
    for i in range(1, 31):
        state.put(partner_contract(f"C{i:03d}", f"2026-10-{i:02d}T08:00:00Z", 4000.0 + i))
    state.faults.update({n: "slow" for n in range(1, 200)})  # every page takes a second
    config = write_config(
        tmp_path / "daemon.yaml", reconcile_seconds=3600, ttl_seconds=5,
        connectors=[rest_connector(partner.url, 3600, page_size=3, timeout_seconds=10)])
    url = env["RECONCILER_DATABASE_URL"]
    subprocess.run([sys.executable, "-m", "reconciler.cli", "db", "upgrade"], check=True,
                   env={**os.environ}, capture_output=True)
    daemon = DaemonProcess("term", {**env, "PARTNER_TOKEN": PARTNER_TOKEN}, config,
                           tmp_path).start()
    engine = create_engine(url)

    def staged() -> int:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(deliveries))
                       .scalar_one())

    try:
        wait_until(lambda: staged() >= 2, 90, "two pages staged", every=0.05)
        before = staged()
        daemon.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        sent = time.monotonic()
        assert daemon.proc.wait(timeout=30) == 0  # type: ignore[union-attr]
        took = time.monotonic() - sent
        assert took < 10, f"exit took {took:.1f}s"
        pages = [status for _, _, status in state.fired()]
        after = staged()
        assert after == before + 1, (before, after)  # the page in flight was finished
        assert pages.count(200) == after < 10  # every page fetched was staged; then it stopped
        with engine.connect() as conn:
            cursor = json.loads(conn.execute(select(cursors.c.value)).scalar_one())
            run = conn.execute(select(pull_runs)).mappings().one()
            lease = conn.execute(select(scheduler_lease)).mappings().one()
        assert cursor["key"] == f"C{3 * after:03d}"  # the cursor is that of the last page
        assert (run["status"], run["deliveries"]) == ("stopped", after)
        assert run["finished_at"] is not None
        expires = lease["expires_at"]
        assert (expires.replace(tzinfo=UTC) if expires.tzinfo is None else expires) <= \
            datetime.now(UTC)  # released: a standby would take over at once
        messages = daemon.messages()
        assert messages.index("stopping: finishing the unit of work in progress") < \
            messages.index("pull stopped for shutdown after the delivery in progress") < \
            messages.index("stopped")
    finally:
        daemon.kill()
        engine.dispose()
