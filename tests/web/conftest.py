"""The desk over the contract's worked example: two findings, one user of each role."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import insert

from reconciler.cli import main
from reconciler.config import load_settings
from reconciler.pipeline import Reconciler
from reconciler.web.app import create_app
from reconciler.web.security import hash_password
from reconciler.web.settings import WebSettings
from reconciler.web.tables import users

PASSWORD = "correct horse battery"
ROLES = {"olga": "officer", "omar": "officer", "sam": "supervisor", "sara": "supervisor",
         "aude": "auditor", "adam": "admin"}


@dataclass
class DeskWorld:
    client: TestClient
    app: Reconciler
    missing: str  # the auto-registered missing_registration (Maria)
    wage: str  # the open wage_underdeclared (Imran)

    def token(self, username: str) -> dict[str, str]:
        r = self.client.post("/api/v1/auth/token",
                             data={"username": username, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}


@functools.cache
def _password_hash() -> str:
    return hash_password(PASSWORD)  # argon2 is slow on purpose: hash once per test process


def run_example() -> Reconciler:
    for args in (["db", "upgrade"], ["run", "--once"]):
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    app = Reconciler.from_settings(load_settings(), migrate=False)
    with app.engine.begin() as conn:
        conn.execute(insert(users), [
            {"username": name, "role": role, "password_hash": _password_hash(),
             "active": True, "failed_logins": 0, "created_at": datetime.now(UTC)}
            for name, role in ROLES.items()])
    return app


@pytest.fixture
def desk(env: dict[str, str]) -> Iterator[DeskWorld]:
    app = run_example()
    settings = WebSettings(session_secret="s" * 32, lockout_attempts=3)
    client = TestClient(create_app(settings, app), base_url="https://testserver",
                        raise_server_exceptions=False)
    world = DeskWorld(client, app, "", "")
    items = client.get("/api/v1/findings", headers=world.token("olga")).json()["items"]
    by_rule = {i["rule"]: i["finding_id"] for i in items}
    world.missing, world.wage = by_rule["missing_registration"], by_rule["wage_underdeclared"]
    yield world
    client.close()
    app.engine.dispose()
