"""The REST connector against a real partner API (uvicorn on loopback) that injects faults."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from connectors import build_connector
from connectors.rest import build_rest
from reconciler.config import ConnectorSettings, Settings
from reconciler.identity.identifiers import DEFAULT_PROFILE
from reconciler.ingest import pull_connector
from reconciler.pipeline import Reconciler
from tests.connectors.contract import ConnectorContract, Row, rows
from tests.connectors.partner_api import (
    CLIENT_ID,
    CLIENT_SECRET,
    STATIC_TOKEN,
    PartnerServer,
    iso,
    serve_partner,
)

FIELDS = {"contract_id": "id", "employer_id": "employer.unifiedNumber",
          "passport_number": "worker.passport", "nationality": "worker.nationality",
          "name_en": "worker.fullName", "date_of_birth": "worker.birthDate",
          "start_date": "start", "status": "state", "basic_wage": "wage",
          "updated_at": "modifiedAt"}
ENV = {"PARTNER_TOKEN": STATIC_TOKEN, "PARTNER_CLIENT_SECRET": CLIENT_SECRET}


@pytest.fixture(scope="module")
def partner_server() -> Iterator[PartnerServer]:
    yield from serve_partner()


@dataclass
class RestPartner:
    server: PartnerServer
    sleeps: list[float] = field(default_factory=list)

    def put(self, *rows: Row) -> None:
        for row in rows:
            self.server.state.put({
                "id": row.key, "modifiedAt": iso(row.updated_at),
                "employer": {"unifiedNumber": "7000000017"},
                "worker": {"passport": f"P{row.key}", "nationality": "IND",
                           "fullName": "Suresh Kumar Nair", "birthDate": "1987-03-14"},
                "start": "2023-05-01", "state": "ACTIVE", "wage": row.wage})

    def declaration(self, **declared: Any) -> ConnectorSettings:
        values: dict[str, Any] = {
            "name": "partner", "type": "rest", "feed": "contracts",
            "endpoint": f"{self.server.url}/v1/contracts",
            "auth": {"type": "bearer", "token_env": "PARTNER_TOKEN"},
            "cursor_field": "modifiedAt", "tie_break_field": "id", "fields": FIELDS,
            "timeout_seconds": 0.2, "max_attempts": 4, "backoff_seconds": 0.01,
            "max_backoff_seconds": 5}
        values.update(declared)
        return ConnectorSettings.model_validate(values)

    def connector(self, **declared: Any) -> Any:
        # sleeps are recorded, not slept: Retry-After is checked by value, not by the clock
        return build_rest(self.declaration(**declared), env=ENV, sleep=self.sleeps.append)

    def break_after(self, deliveries: int) -> None:
        self.server.state.faults[len(self.server.state.requests) + deliveries + 1] = "403"

    def heal(self) -> None:
        self.server.state.faults.clear()

    def committed(self, deliveries: int) -> None:
        pass


@pytest.fixture
def partner(partner_server: PartnerServer) -> RestPartner:
    partner_server.state.reset()
    return RestPartner(partner_server)


class TestRestContract(ConnectorContract):
    pass


# -- REST specifics ------------------------------------------------------------------------

pull = ConnectorContract.pull
stored = ConnectorContract.stored


def statuses(partner: RestPartner) -> list[int]:
    return [status for _, _, status in partner.server.state.fired()]


def test_every_row_is_delivered_once_across_faults(
        engine: Engine, partner: RestPartner, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="connectors.retry")
    partner.put(*rows(10))
    # pages of 2 → 5 pages; the faults hit page requests in turn
    partner.server.state.faults.update({2: "500", 3: "429", 4: "slow", 5: "drop",
                                        7: "malformed"})
    first = pull(engine, partner, page_size=2, max_attempts=5)
    # 1 ok; 2 500 → retry 3 429 → retry 4 slow (timeout) → retry 5 drop → retry 6 ok (page 2)
    # 7 malformed: the pull stops at page 3 and says which URL
    assert [s.rows_new for s in first.delivered] == [2, 2]
    assert [s.error_kind for s in first.errors] == ["skippable"]
    assert "malformed page" in (first.errors[0].error or "")
    assert "/v1/contracts?" in (first.errors[0].error or "")
    assert statuses(partner)[:4] == [200, 500, 429, 200]
    assert max(partner.sleeps) >= 2.0  # Retry-After: 2 was honoured
    assert len(partner.sleeps) == 4  # 500, 429, timeout, drop: one retry each
    retried = [r.error for r in caplog.records  # type: ignore[attr-defined]
               if r.name == "connectors.retry"]
    faults = ("answered 500", "answered 429", "timed out", "connection failed")
    assert [next((f for f in faults if f in e), e) for e in retried] == list(faults)
    second = pull(engine, partner, page_size=2, max_attempts=5)
    assert second.errors == []
    assert second.rows_new == 6
    kept = stored(engine)
    assert sorted(kept) == [f"C{i:03d}" for i in range(1, 11)]
    assert all(len(v) == 1 for v in kept.values())


def test_unauthorised_is_fatal_reported_and_the_other_connectors_still_run(
        database_url: str, partner: RestPartner, example_inbox: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    partner.put(*rows(3))
    monkeypatch.setenv("PARTNER_TOKEN", "not-the-token")
    rest = partner.declaration(name="labour-api")
    contracts = ConnectorSettings(name="contracts", feed="contracts", path="contracts")
    settings = Settings(database_url=database_url, inbox=example_inbox,
                        connectors=(rest, contracts))
    app = Reconciler.from_settings(settings, migrate=True)
    try:
        results = app.pull()
    finally:
        app.engine.dispose()
    failed = [s for s in results if s.error is not None]
    assert [(s.connector, s.error_kind) for s in failed] == [("labour-api", "fatal")]
    assert "answered 401" in (failed[0].error or "")
    assert statuses(partner) == [401]  # not retried
    assert sum(s.rows_new for s in results if s.connector == "contracts") > 0


def test_a_missing_secret_variable_is_fatal_and_names_it(engine: Engine,
                                                         partner: RestPartner) -> None:
    connector = build_rest(partner.declaration(), env={})
    [failed] = pull_connector(engine.begin, connector, DEFAULT_PROFILE)
    assert failed.error_kind == "fatal"
    assert "PARTNER_TOKEN" in (failed.error or "") and "auth.token_env" in (failed.error or "")
    assert statuses(partner) == []


def test_oauth2_client_credentials_refreshes_a_revoked_token_once(
        engine: Engine, partner: RestPartner) -> None:
    partner.put(*rows(6))
    partner.server.state.faults[2] = "revoke"  # the partner forgets every token mid-run
    auth = {"type": "oauth2", "token_url": f"{partner.server.url}/oauth/token",
            "client_id": CLIENT_ID, "client_secret_env": "PARTNER_CLIENT_SECRET"}
    result = pull(engine, partner, page_size=2, auth=auth)
    assert result.errors == [] and result.rows_new == 6
    assert partner.server.state.tokens_issued == 2
    assert statuses(partner) == [200, 401, 200, 200]


def test_oauth2_with_a_wrong_client_is_fatal(engine: Engine, partner: RestPartner) -> None:
    auth = {"type": "oauth2", "token_url": f"{partner.server.url}/oauth/token",
            "client_id": "someone-else", "client_secret_env": "PARTNER_CLIENT_SECRET"}
    result = pull(engine, partner, auth=auth)
    assert [s.error_kind for s in result.errors] == ["fatal"]
    assert "client_secret_env" in (result.errors[0].error or "")


def test_retries_are_bounded_and_the_last_error_is_reported(engine: Engine,
                                                            partner: RestPartner) -> None:
    partner.put(*rows(2))
    partner.server.state.faults.update({n: "500" for n in range(1, 10)})
    result = pull(engine, partner, max_attempts=3)
    assert [s.error_kind for s in result.errors] == ["retriable"]
    assert statuses(partner) == [500, 500, 500]
    assert len(partner.sleeps) == 2 and all(0 <= s <= 0.04 for s in partner.sleeps)
    assert stored(engine) == {}


def test_a_row_that_breaks_the_contract_is_quarantined_and_the_rest_staged(
        engine: Engine, partner: RestPartner) -> None:
    partner.put(*rows(3))
    partner.server.state.put({"id": "C002", "modifiedAt": iso(rows(3)[1].updated_at),
                              "employer": {"unifiedNumber": "bad"}, "worker": {}})
    result = pull(engine, partner)
    assert (result.rows_total, result.rows_new) == (3, 2)
    assert ConnectorContract.quarantined(engine) == 1


def test_declarations_name_the_key_that_is_wrong() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        ConnectorSettings.model_validate({
            "name": "x", "type": "rest", "feed": "contracts", "path": "contracts",
            "endpoint": "https://partner.example/v1", "fields": {"wage": "w"}})
    text = str(caught.value)
    for expected in ("cursor_field is required", "tie_break_field is required",
                     "path is not used by type rest", "fields: wage not a column"):
        assert expected in text
    with pytest.raises(ValidationError, match="auth type bearer needs token_env"):
        ConnectorSettings.model_validate({"name": "x", "type": "rest", "feed": "contracts",
                                          "endpoint": "https://partner.example/v1",
                                          "cursor_field": "m", "tie_break_field": "id",
                                          "auth": {"type": "bearer"}})
    with pytest.raises(ValidationError, match="path is required for type filedrop"):
        ConnectorSettings.model_validate({"name": "x", "feed": "contracts"})
    with pytest.raises(ValidationError, match="lag_seconds is not used by type filedrop"):
        ConnectorSettings.model_validate({"name": "x", "feed": "contracts", "path": "c",
                                          "lag_seconds": 5})
    filedrop = ConnectorSettings(name="contracts", feed="contracts", path="contracts")
    assert build_connector(filedrop, Path("/inbox")).name == "contracts"
