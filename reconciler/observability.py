"""The operations endpoints: ``/healthz``, ``/readyz``, ``/metrics``.

A small FastAPI app built by :func:`create_ops_app`; nothing is served at import. The
daemon runs it (or the web desk mounts it: ``desk.mount("/", ops_app)`` or includes its
routes) — the endpoints are unauthenticated on purpose, as probes and Prometheus expect, so
keep the port inside the cluster.

``/readyz`` answers every check's state, not only the verdict: ``database`` (reachable,
unreachable), ``migrations`` (current, behind, unknown), and in the daemon ``scheduler``
(leader, standby, none) with the lease it holds or saw — and a reason for each failed check
(``database unreachable at …: connection refused``, ``scheduler neither leader nor standby:
lease lost: …``).
"""

from __future__ import annotations

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import Engine

from reconciler.health import SchedulerState, liveness, readiness_report
from reconciler.metrics import Metrics


def create_ops_app(engine: Engine, metrics: Metrics,
                   scheduler_state: SchedulerState | None = None) -> FastAPI:
    """``scheduler_state``: see :mod:`reconciler.health` (None = no scheduler here)."""
    app = FastAPI(title="reconciler operations", docs_url=None, redoc_url=None,
                  openapi_url=None)

    # plain ``def`` routes: FastAPI runs them in its thread pool, so a slow database
    # blocks a worker thread, never the event loop
    @app.get("/healthz")
    def healthz() -> JSONResponse:
        health = liveness()
        return JSONResponse({"status": "alive" if health.ok else "dead",
                             "reasons": health.reasons}, status_code=200 if health.ok else 503)

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        # {"status", "reasons", "database", "migrations"} and, with a scheduler,
        # "scheduler" (leader | standby | none) and "lease" (holder, epoch, leader)
        report = readiness_report(engine, scheduler_state)
        return JSONResponse(report.as_dict(), status_code=200 if report.ok else 503)

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app
