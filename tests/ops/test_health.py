"""Liveness and readiness against real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from reconciler.health import (
    SchedulerRole,
    SchedulerStatus,
    liveness,
    readiness,
    scheduler_reasons,
)
from reconciler.metrics import create_metrics
from reconciler.migrate import head_revision, upgrade
from reconciler.observability import create_ops_app
from reconciler.storage import create_db_engine


def test_a_migrated_database_is_ready(database_url: str) -> None:
    engine = create_db_engine(database_url)
    upgrade(engine)
    try:
        assert readiness(engine, lambda: "leader") == (True, [])
        client = TestClient(create_ops_app(engine, create_metrics(engine), lambda: "standby"))
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.json() == {
            "status": "ready", "reasons": [], "database": "reachable", "migrations": "current",
            "scheduler": "standby", "lease": {"holder": None, "epoch": None, "leader": None}}
    finally:
        engine.dispose()


def test_an_unmigrated_database_is_not_ready_and_says_why(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        ok, reasons = readiness(engine, lambda: "leader")
        assert not ok
        assert len(reasons) == 1
        assert "empty database" in reasons[0]
        assert str(head_revision(engine)) in reasons[0]
        assert "reconciler db upgrade" in reasons[0]
        client = TestClient(create_ops_app(engine, create_metrics(engine), lambda: "leader"))
        response = client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "not ready" and body["reasons"] == reasons
        assert (body["database"], body["migrations"], body["scheduler"]) == (
            "reachable", "behind", "leader")
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql",
                                                         marks=pytest.mark.postgres)])
def test_an_unreachable_database_is_not_ready_but_alive(kind: str, tmp_path: Path) -> None:
    # SQLite: a file in a folder that does not exist (no create_db_engine: it would make
    # the folder). PostgreSQL: a port nothing listens on.
    url = (f"sqlite:///{tmp_path}/missing/dir/reconciler.db" if kind == "sqlite" else
           "postgresql+psycopg://postgres:secret@127.0.0.1:1/reconciler?connect_timeout=3")
    engine = create_engine(url)
    try:
        ok, reasons = readiness(engine, lambda: "leader")
        assert not ok
        assert len(reasons) == 1 and reasons[0].startswith("database unreachable at ")
        assert "secret" not in reasons[0]  # the password never reaches a probe's output
        client = TestClient(create_ops_app(engine, create_metrics(engine), lambda: "leader"))
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert (ready.json()["database"], ready.json()["migrations"]) == ("unreachable",
                                                                          "unknown")
        alive = client.get("/healthz")
        assert alive.status_code == 200 and alive.json()["status"] == "alive"
    finally:
        engine.dispose()


@pytest.mark.parametrize(("role", "ready"), [("leader", True), ("standby", True),
                                             ("none", False), (None, True)])
def test_the_scheduler_must_lead_or_stand_by(role: SchedulerRole | None, ready: bool,
                                             tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path}/r.db")
    upgrade(engine)
    state = (lambda: role) if role is not None else None
    ok, reasons = readiness(engine, state)
    assert ok is ready
    if not ready:
        assert reasons == ["scheduler is neither leader nor standby (not started, stopped, "
                           "or lost its lease)"]
    engine.dispose()


def test_a_scheduler_status_carries_its_reason_and_lease(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path}/r.db")
    upgrade(engine)
    lost = SchedulerStatus("none", "lease lost: database error while renewing: refused",
                           "host:1:abc", None, "host:1:abc")
    assert readiness(engine, lambda: lost) == (
        False, ["scheduler neither leader nor standby: lease lost: database error while "
                "renewing: refused"])
    leading = SchedulerStatus("leader", None, "host:1:abc", 7, "host:1:abc")
    client = TestClient(create_ops_app(engine, create_metrics(engine), lambda: leading))
    body = client.get("/readyz").json()
    assert body["scheduler"] == "leader"
    assert body["lease"] == {"holder": "host:1:abc", "epoch": 7, "leader": "host:1:abc"}
    engine.dispose()


def test_an_unknown_scheduler_role_is_named() -> None:
    assert scheduler_reasons("candidate") == [
        "scheduler reported an unknown role 'candidate' (expected leader, standby, none)"]


def test_liveness_needs_nothing() -> None:
    assert liveness() == (True, [])
