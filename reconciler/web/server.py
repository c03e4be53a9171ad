"""Run the desk beside the daemon: uvicorn in a thread, stopped with the daemon.

The daemon wires it in with::

    server = DeskServer(load_web_settings(sla_days=app.catalogue.sla_days()), app, ops)
    server.start()        # after the scheduler starts
    ...
    server.stop()         # on SIGTERM, after the unit of work in progress
"""

from __future__ import annotations

import threading
import time

import uvicorn
from fastapi import FastAPI

from reconciler.errors import FatalError
from reconciler.pipeline import Reconciler
from reconciler.web.app import create_app
from reconciler.web.settings import WebSettings


class DeskServer:
    def __init__(self, settings: WebSettings, reconciler: Reconciler,
                 ops: FastAPI | None = None) -> None:
        app = create_app(settings, reconciler)
        if ops is not None:  # /healthz, /readyz, /metrics beside the desk
            app.include_router(ops.router)
        config = uvicorn.Config(app, host=settings.host,
                                port=settings.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="desk", daemon=True)

    def start(self, timeout: float = 20.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise FatalError("the desk's web server did not start (is the port "
                                 "RECONCILER_HTTP_PORT free?)")
            time.sleep(0.05)

    @property
    def port(self) -> int:
        sockets = [s for server in self.server.servers for s in server.sockets]
        return int(sockets[0].getsockname()[1]) if sockets else self.server.config.port

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
