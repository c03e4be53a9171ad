"""The SQL connector against a partner view on SQLite and PostgreSQL.

The partner's table and view live in the test database itself (``database_url``), read
through their own engine from the URL in the variable named by ``url_env`` — the same path
a real partner database takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    insert,
    text,
)

from connectors.sql import build_sql
from reconciler.config import ConnectorSettings
from reconciler.identity.identifiers import DEFAULT_PROFILE
from reconciler.ingest import pull_connector
from tests.connectors.contract import ConnectorContract, Row, rows

partner_metadata = MetaData()
partner_contracts = Table(
    "partner_contracts", partner_metadata,
    Column("id", String(20), primary_key=True),
    Column("modified_at", DateTime(timezone=True), nullable=False),
    Column("employer_no", String(10)), Column("passport", String(20)),
    Column("full_name", String(80)), Column("nationality", String(3)),
    Column("birth_date", String(10)), Column("start_date", String(10)),
    Column("state", String(10)), Column("wage", Integer),
)
VIEW = "CREATE VIEW partner_contracts_v AS SELECT * FROM partner_contracts"
FIELDS = {"contract_id": "id", "employer_id": "employer_no", "passport_number": "passport",
          "nationality": "nationality", "name_en": "full_name", "date_of_birth": "birth_date",
          "start_date": "start_date", "status": "state", "basic_wage": "wage",
          "updated_at": "modified_at"}


@dataclass
class SqlPartner:
    engine: Engine
    url: str
    sleeps: list[float] = field(default_factory=list)
    broken_after: int | None = None

    def put(self, *rows: Row) -> None:
        with self.engine.begin() as conn:
            for row in rows:
                conn.execute(delete(partner_contracts).where(partner_contracts.c.id == row.key))
                conn.execute(insert(partner_contracts).values(
                    id=row.key, modified_at=row.updated_at, employer_no="7000000017",
                    passport=f"P{row.key}", full_name="Suresh Kumar Nair", nationality="IND",
                    birth_date="1987-03-14", start_date="2023-05-01", state="ACTIVE",
                    wage=row.wage))

    def declaration(self, **declared: Any) -> ConnectorSettings:
        values: dict[str, Any] = {
            "name": "partner", "type": "sql", "feed": "contracts", "url_env": "PARTNER_DB_URL",
            "view": "partner_contracts_v", "cursor_field": "modified_at",
            "tie_break_field": "id", "fields": FIELDS, "max_attempts": 2,
            "backoff_seconds": 0.01}
        values.update(declared)
        return ConnectorSettings.model_validate(values)

    def connector(self, **declared: Any) -> Any:
        return build_sql(self.declaration(**declared), env={"PARTNER_DB_URL": self.url},
                         sleep=self.sleeps.append)

    def break_after(self, deliveries: int) -> None:
        self.broken_after = deliveries

    def committed(self, deliveries: int) -> None:
        if deliveries == self.broken_after:  # the partner drops its view mid-pull
            with self.engine.begin() as conn:
                conn.execute(text("DROP VIEW partner_contracts_v"))

    def heal(self) -> None:
        self.broken_after = None
        with self.engine.begin() as conn:
            conn.execute(text(VIEW))


@pytest.fixture
def partner(engine: Engine, database_url: str) -> SqlPartner:
    partner_metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text(VIEW))
    return SqlPartner(engine, database_url)


class TestSqlContract(ConnectorContract):
    pass


def test_a_missing_url_variable_is_fatal_and_names_it(engine: Engine,
                                                      partner: SqlPartner) -> None:
    connector = build_sql(partner.declaration(), env={})
    [failed] = pull_connector(engine.begin, connector, DEFAULT_PROFILE)
    assert failed.error_kind == "fatal"
    assert "PARTNER_DB_URL" in (failed.error or "") and "url_env" in (failed.error or "")


def test_an_unknown_column_is_fatal_and_points_at_the_declaration(
        engine: Engine, partner: SqlPartner) -> None:
    partner.put(*rows(2))
    connector = partner.connector(fields={**FIELDS, "sex": "gender"})
    [failed] = pull_connector(engine.begin, connector, DEFAULT_PROFILE)
    # SQLite reports an unknown column as an operational error: retried, then reported
    assert failed.error_kind in ("fatal", "retriable")
    assert "gender" in (failed.error or "")
    assert ConnectorContract.stored(engine) == {}
