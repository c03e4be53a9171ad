"""Shared fixtures: a database on SQLite *and* PostgreSQL, the contract's example inbox."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from reconciler.migrate import upgrade
from reconciler.storage import create_db_engine

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("RECONCILER_SHARED", ROOT.parent / "shared"))
EXAMPLE_INBOX = SHARED / "contracts" / "example-inbox"
PG_ADMIN_URL = os.environ.get("RECONCILER_TEST_PG",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def _any_free_http_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon started by a test serves its desk and /metrics on a port the OS picks, so
    tests running in parallel never fight over 8080."""
    monkeypatch.setenv("RECONCILER_HTTP_PORT", "0")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL database dropped after.

    PostgreSQL is never skipped: if the server is down the test fails and says so
    (start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`).
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/reconciler.db"
        return
    name = f"reconciler_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a fresh database with the schema migrated to head."""
    engine = create_db_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def example_inbox(tmp_path: Path) -> Path:
    """A private copy of the contract's worked example (tests may add files to it)."""
    target = tmp_path / "inbox"
    shutil.copytree(EXAMPLE_INBOX, target)
    return target


@pytest.fixture
def env(database_url: str, example_inbox: Path,
        monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The contract's batch interface, pointed at the test database and inbox."""
    values = {"RECONCILER_DATABASE_URL": database_url, "RECONCILER_INBOX": str(example_inbox),
              "RECONCILER_AS_OF": "2026-11-01"}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RECONCILER_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.delenv("RECONCILER_CONFIG", raising=False)
    return values
