"""The database goes away — at start-up and mid-run — and the daemon neither crashes nor
needs a restart.

PostgreSQL: the daemon (a real ``reconciler run`` process) reaches the database through a
TCP proxy in the test process; cutting it closes every connection and refuses new ones,
restoring it listens again on the same port. SQLite: the start-up case, with the
database's folder impossible to create (a file stands where the folder should be) until
the test removes it. A mid-run SQLite outage is not tested: the database is a local file
the process already has open, and there is no honest way to take it away from a running
process (root ignores permissions; a renamed or deleted file stays open).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url

from reconciler.storage import deliveries, findings, pull_runs, runs
from tests.ops.daemons import (
    DaemonProcess,
    TcpProxy,
    drop_contract,
    utc,
    wait_until,
    write_config,
)

TTL = 3.0


def count(url: str, table: object) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
    except Exception:
        return -1
    finally:
        engine.dispose()


def not_ready(daemon: DaemonProcess, *needles: str) -> dict[str, object] | None:
    ready = daemon.readyz()
    if ready is None or ready[0] != 503:
        return None
    text = " | ".join(ready[1]["reasons"])
    return ready[1] if all(n in text for n in needles) else None


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_outage_at_start_up_and_mid_run(
        env: dict[str, str], example_inbox: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = env["RECONCILER_DATABASE_URL"]
    subprocess.run([sys.executable, "-m", "reconciler.cli", "db", "upgrade"], check=True,
                   env={**os.environ}, capture_output=True)
    parsed = make_url(real)
    proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432)  # not listening yet
    proxied = parsed.set(port=proxy.port).render_as_string(hide_password=False)
    monkeypatch.setenv("RECONCILER_DATABASE_URL", proxied)
    config = write_config(tmp_path / "daemon.yaml", reconcile_seconds=2, ttl_seconds=TTL)
    daemon = DaemonProcess("outage", {**env, "RECONCILER_DATABASE_URL": proxied}, config,
                           tmp_path).start()
    try:
        # -- start-up with the database unreachable: alive, not ready, retrying ------------
        body = wait_until(lambda: not_ready(daemon, "database unreachable"), 90,
                          "/readyz 503 saying the database is unreachable")
        assert body["database"] == "unreachable" and body["scheduler"] == "none"
        alive = daemon.get("/healthz")
        assert alive is not None and alive.status_code == 200
        wait_until(lambda: daemon.messages().count("waiting for the database") >= 2, 30,
                   "a retry with backoff")
        assert daemon.alive()
        proxy.start()
        lead = daemon.wait_role("leader", 60)
        assert lead["lease"]["epoch"] == 1 and lead["database"] == "reachable"
        wait_until(lambda: count(real, findings) == 2, 60, "the first reconcile's findings")

        # -- mid-run: every connection cut, new ones refused --------------------------------
        proxy.cut()
        cut_at = datetime.now(UTC)
        body = wait_until(lambda: not_ready(daemon, "database unreachable", "lease lost"),
                          TTL + 20, "/readyz 503: database unreachable, lease lost")
        assert body["scheduler"] == "none"
        drop_contract(example_inbox, "contracts-2026-11.csv", "16000.00",
                      "2026-10-20T08:00:00Z")  # arrives while the database is away
        time.sleep(TTL + 1)  # a whole TTL: pulls and the reconcile fail and are retried
        assert daemon.alive()
        assert daemon.metric("reconciler_database_up") == 0
        proxy.restore()
        back = daemon.wait_role("leader", 60)
        assert back["lease"]["epoch"] == 2  # it took the lease back: a new reign
        wait_until(lambda: count(real, deliveries) == 7, 60, "the file dropped meanwhile")
        engine = create_engine(real)
        try:
            with engine.connect() as conn:
                received = utc(conn.execute(select(func.max(deliveries.c.received_at)))
                               .scalar_one())
                assert received > cut_at
                hashes = conn.execute(select(deliveries.c.content_hash)).scalars().all()
            assert len(hashes) == len(set(hashes)) == 7  # nothing twice, nothing lost

            def reconciled() -> bool:
                with engine.connect() as conn:
                    return bool(conn.execute(select(func.count()).select_from(runs).where(
                        runs.c.status == "succeeded", runs.c.started_at > received))
                        .scalar_one())

            wait_until(reconciled, 60, "a reconcile after the outage")
            with engine.connect() as conn:
                recorded = conn.execute(select(pull_runs.c.epoch, func.count())
                                        .group_by(pull_runs.c.epoch)).all()
        finally:
            engine.dispose()
        assert {epoch for epoch, _ in recorded} == {1, 2}  # pulls resumed under epoch 2
        messages = daemon.messages()
        assert "stepped down from scheduler leader" in messages
        assert messages.count("became the scheduler leader") == 2
        assert daemon.metric("reconciler_scheduler_leadership_changes_total",
                             change="lost") == 1
        assert daemon.metric("reconciler_database_up") == 1
        assert daemon.terminate() == 0
    finally:
        daemon.kill()
        proxy.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_folder_missing_at_start_up(env: dict[str, str], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "volume"
    blocker.write_text("not a folder yet", encoding="utf-8")  # the volume is not mounted
    url = f"sqlite:///{blocker}/data/reconciler.db"
    monkeypatch.setenv("RECONCILER_DATABASE_URL", url)
    config = write_config(tmp_path / "daemon.yaml", reconcile_seconds=2, ttl_seconds=TTL)
    daemon = DaemonProcess("sqlite", {**env, "RECONCILER_DATABASE_URL": url}, config,
                           tmp_path).start()
    try:
        body = wait_until(lambda: not_ready(daemon, "database unreachable"), 90,
                          "/readyz 503 saying the database is unreachable")
        assert body["scheduler"] == "none"
        assert "waiting for the database" in str(body["reasons"])
        alive = daemon.get("/healthz")
        assert alive is not None and alive.status_code == 200
        blocker.unlink()  # the volume appears
        daemon.wait_role("leader", 60)
        wait_until(lambda: count(url, findings) == 2, 60, "the first reconcile's findings")
        assert count(url, deliveries) == 6
        assert daemon.terminate() == 0
    finally:
        daemon.kill()
