"""Property-based: schemathesis generates requests from the OpenAPI document — conforming
and deliberately malformed — and no endpoint may answer any of them with a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from reconciler.web.app import create_app
from reconciler.web.settings import WebSettings
from tests.web.conftest import PASSWORD, run_example


@pytest.fixture
def web(example_inbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> Iterator[FastAPI]:
    monkeypatch.setenv("RECONCILER_DATABASE_URL", f"sqlite:///{tmp_path}/st.db")
    monkeypatch.setenv("RECONCILER_INBOX", str(example_inbox))
    monkeypatch.setenv("RECONCILER_AS_OF", "2026-11-01")
    monkeypatch.delenv("RECONCILER_CONFIG", raising=False)
    app = run_example()
    yield create_app(WebSettings(session_secret="st" * 16, lockout_attempts=1000), app)
    app.engine.dispose()


@pytest.mark.parametrize("user", ["sam", "aude", "adam"])
def test_no_generated_request_gets_a_server_error(web: FastAPI, user: str) -> None:
    client = TestClient(web)
    token = client.post("/api/v1/auth/token", data={
        "username": user, "password": PASSWORD}).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", web)
    failures: list[str] = []
    statuses: set[int] = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in GenerationMode:
            try:
                _fuzz(operation.as_strategy(generation_mode=mode), mode.value, auth,
                      failures, statuses)
            except Unsatisfiable:  # nothing to break in an operation without inputs
                continue
    assert not failures, "\n".join(failures[:10])
    assert statuses & {400, 401, 403, 404, 409, 422}, statuses  # bad input was sent, and refused


def _fuzz(strategy: Any, label: str, auth: dict[str, str], failures: list[str],
          statuses: set[int]) -> None:
    @given(strategy)
    @settings(max_examples=10, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        response = case.call(headers=auth)
        statuses.add(response.status_code)
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path} ({label}): "
                            f"{response.status_code} {response.text[:200]}")

    check()
