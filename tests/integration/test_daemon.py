"""The daemon as an operator runs it: a real process, real schedules, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from reconciler.storage import findings


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
