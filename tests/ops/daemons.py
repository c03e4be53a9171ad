"""Daemons as an operator runs them, for the tests that need real processes:

* :class:`DaemonProcess` — ``reconciler run`` in a subprocess with its own YAML config,
  HTTP port and log file; probes, metrics and its JSON log lines;
* :class:`TcpProxy` — a loopback TCP proxy (threads in the test process) in front of
  PostgreSQL that a test can *cut* (every connection closed, new ones refused) and
  *restore* on the same port: a real database outage as the daemon sees it;
* :func:`write_config` — the YAML a test daemon runs with (schedules in seconds, a short
  lease TTL).

Only loopback addresses, ever.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"


CONTRACTS_HEADER = (
    "contract_id,employer_id,national_id,residence_id,border_number,passport_number,"
    "nationality,name_en,name_ar,date_of_birth,sex,occupation_code,start_date,end_date,"
    "status,basic_wage,housing_allowance,updated_at\n")


def drop_contract(inbox: Path, name: str, wage: str, updated_at: str) -> None:
    """A new contracts file in the example inbox: a later version of Abdulaziz's contract
    (C00009004) at another wage — one new row, so the pull triggers a reconcile."""
    (inbox / "contracts" / name).write_text(
        CONTRACTS_HEADER + "C00009004,7000000017,1045521182,,,,SAU,Abdulaziz Bin Saleh "
        f"Al-Harbi,عبدالعزيز بن صالح الحربي,1979-11-02,M,1120,2019-09-15,,ACTIVE,{wage},"
        f"3750.00,{updated_at}\n", encoding="utf-8")


def utc(moment: datetime) -> datetime:
    """A timestamp read back from either database, as an aware UTC datetime."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# The partner API of tests/connectors/partner_api.py, as a REST connector declares it.
PARTNER_TOKEN = "static-token-for-tests"  # partner_api.STATIC_TOKEN
REST_FIELDS = {"contract_id": "id", "employer_id": "employer.unifiedNumber",
               "passport_number": "worker.passport", "nationality": "worker.nationality",
               "name_en": "worker.fullName", "date_of_birth": "worker.birthDate",
               "start_date": "start", "status": "state", "basic_wage": "wage",
               "updated_at": "modifiedAt"}


def rest_connector(url: str, interval: int, **declared: Any) -> dict[str, Any]:
    """A REST connector on the partner API at ``url`` (its token in ``PARTNER_TOKEN``)."""
    return {"name": "partner", "type": "rest", "feed": "contracts",
            "endpoint": f"{url}/v1/contracts",
            "auth": {"type": "bearer", "token_env": "PARTNER_TOKEN"},
            "cursor_field": "modifiedAt", "tie_break_field": "id", "fields": REST_FIELDS,
            "schedule": {"interval_seconds": interval}, **declared}


def partner_contract(key: str, modified_at: str, wage: float, state: str = "ACTIVE"
                     ) -> dict[str, Any]:
    """One contract in the partner's own shape; ``state`` outside ACTIVE / TERMINATED /
    SUSPENDED breaks the contract (the row is quarantined)."""
    return {"id": key, "modifiedAt": modified_at,
            "employer": {"unifiedNumber": "7000000017"},
            "worker": {"passport": f"P{key}", "nationality": "IND",
                       "fullName": "Suresh Kumar Nair", "birthDate": "1987-03-14"},
            "start": "2023-05-01", "state": state, "wage": wage}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], Any], seconds: float, what: str,
               every: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {seconds}s waiting for {what} (last: {last!r})")


def filedrop_connectors(interval: int) -> list[dict[str, Any]]:
    """The six contract feeds as file drops, each pulled every ``interval`` seconds."""
    return [
        {"name": "registry-contributors", "feed": "contributors", "path": "registry",
         "pattern": "contributors*.csv", "schedule": {"interval_seconds": interval}},
        {"name": "registry-engagements", "feed": "engagements", "path": "registry",
         "pattern": "engagements*.csv", "schedule": {"interval_seconds": interval}},
        *({"name": feed, "feed": feed, "path": feed, "schedule": {"interval_seconds": interval}}
          for feed in ("employers", "contracts", "permits", "payroll")),
    ]


def write_config(path: Path, *, connectors: list[dict[str, Any]] | None = None,
                 reconcile_seconds: int = 2, ttl_seconds: float = 3.0,
                 renew_seconds: float | None = None, **extra: Any) -> Path:
    data: dict[str, Any] = {
        "rules_file": str(ROOT / "config" / "rules.yaml"),
        "connectors": connectors if connectors is not None else filedrop_connectors(1),
        "reconcile_schedule": {"interval_seconds": reconcile_seconds},
        "lease": {"ttl_seconds": ttl_seconds,
                  **({"renew_seconds": renew_seconds} if renew_seconds else {})},
        **extra,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


class DaemonProcess:
    """``python -m reconciler.cli run`` with ``env`` (the test's ``RECONCILER_*``), the
    config file and a port of its own; stderr (the JSON log) goes to ``log``."""

    def __init__(self, name: str, env: dict[str, str], config: Path, log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.env = {**os.environ, **env, "RECONCILER_CONFIG": str(config),
                    "RECONCILER_HTTP_PORT": str(self.port)}
        self.log = log_dir / f"daemon-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = f"http://{LOOPBACK}:{self.port}"

    def start(self) -> DaemonProcess:
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen([sys.executable, "-m", "reconciler.cli", "run"],
                                         env=self.env, stdout=subprocess.DEVNULL, stderr=sink,
                                         cwd=ROOT)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str) -> httpx.Response | None:
        try:
            return httpx.get(self.base + path, timeout=5)
        except httpx.HTTPError:
            return None

    def readyz(self) -> tuple[int, dict[str, Any]] | None:
        response = self.get("/readyz")
        if response is None:
            return None
        return response.status_code, response.json()

    def role(self) -> str | None:
        ready = self.readyz()
        return None if ready is None else ready[1].get("scheduler")

    def wait_role(self, role: str, seconds: float = 60) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            assert self.alive(), f"daemon {self.name} exited: {self.tail()}"
            ready = self.readyz()
            return ready[1] if ready is not None and ready[0] == 200 and \
                ready[1].get("scheduler") == role else None

        result: dict[str, Any] = wait_until(check, seconds, f"daemon {self.name} as {role}")
        return result

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of ``/metrics`` (None: not exposed or not answering)."""
        response = self.get("/metrics")
        if response is None:
            return None
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v
                                               for k, v in labels.items()):
                    return float(sample.value)
        return None

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"message": line})
        return out

    def messages(self) -> list[str]:
        return [str(line.get("message")) for line in self.lines()]

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(encoding="utf-8", errors="replace")
                         .splitlines()[-lines:])

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``target``. :meth:`cut` closes the listener and every
    open connection (clients see resets, new connections are refused); :meth:`restore`
    listens again on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._up = threading.Event()
        self.connections = 0

    def start(self) -> TcpProxy:
        self.restore()
        return self

    def restore(self) -> None:
        if self._up.is_set():
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener
        self._up.set()
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._acceptor.start()

    def cut(self) -> None:
        self._up.clear()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            doomed, self._sockets = self._sockets, set()
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while self._up.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                if not self._up.is_set():
                    client.close()
                    upstream.close()
                    return
                self._sockets |= {client, upstream}
                self.connections += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(sink)
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
