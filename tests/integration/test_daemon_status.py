"""``reconciler status`` (table and ``--json``) after a leader's real pulls and reconcile, on
SQLite and PostgreSQL: cursors, last and next pulls, backlogs, the lease, the last
reconcile, the outbox and the quarantine."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.config import load_settings
from reconciler.daemon import Daemon
from reconciler.pipeline import Reconciler
from tests.ops.daemons import filedrop_connectors, write_config


def status(*args: str) -> Any:
    result = CliRunner().invoke(main, ["status", *args], catch_exceptions=False)
    return result


def parse(moment: str | None) -> datetime | None:
    return None if moment is None else datetime.fromisoformat(moment.replace("Z", "+00:00"))


@pytest.fixture
def config(env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    rest = {"name": "labour-api", "type": "rest", "feed": "contracts",
            "endpoint": "http://127.0.0.1:1/v1/contracts",  # nothing listens there
            "cursor_field": "modifiedAt", "tie_break_field": "id",
            "fields": {"contract_id": "id", "updated_at": "modifiedAt"},
            "max_attempts": 1, "connect_timeout_seconds": 1,
            "schedule": {"interval_seconds": 300}}
    path = write_config(tmp_path / "daemon.yaml",
                        connectors=[*filedrop_connectors(60), rest],
                        reconcile_seconds=3600, ttl_seconds=30)
    monkeypatch.setenv("RECONCILER_CONFIG", str(path))
    return path


def test_status_after_a_leaders_pulls_and_reconcile(config: Path, example_inbox: Path) -> None:
    settings = load_settings(config)
    daemon = Daemon(Reconciler.from_settings(settings, migrate=True), holder="host:1:lead")
    daemon._waiting = None  # the database is there: what start_scheduler() would say
    try:
        daemon.keeper.tick()
        for connector in settings.connectors:
            daemon.pull(connector.name)
        daemon.reconcile("after-pull")
        # a partner drops a file the next pull has not read yet
        shutil.copy(example_inbox / "contracts" / "contracts-2026-10.csv",
                    example_inbox / "contracts" / "contracts-2026-11.csv")
        with open(example_inbox / "contracts" / "contracts-2026-11.csv", "a",
                  encoding="utf-8") as handle:
            handle.write("C00009005,7000000017,,,,,IND,A B,,1990-01-01,M,1,2026-01-01,,"
                         "BOGUS,1.00,0,2026-10-30T08:00:00Z\n")

        result = status("--json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        now = parse(data["generated_at"])
        assert now is not None
        assert data["lease"]["state"] == "held"
        assert (data["lease"]["holder"], data["lease"]["epoch"]) == ("host:1:lead", 1)
        assert 0 < data["lease"]["expires_in_seconds"] <= 30
        assert data["reconcile"]["last_status"] == "succeeded"
        assert data["reconcile"]["last_trigger"] == "after-pull"
        assert data["reconcile"]["last_success_at"] is not None
        assert data["outbox_pending"] == 3 and data["outbox_oldest_age_seconds"] >= 0
        assert data["quarantined"] == 0
        connectors = {c["name"]: c for c in data["connectors"]}
        assert list(connectors) == [c.name for c in settings.connectors]
        contracts = connectors["contracts"]
        assert contracts["cursor"] == "1 files delivered"
        assert contracts["last_pull_status"] == "succeeded"
        assert contracts["backlog"] == 1 and "not yet delivered" in contracts["backlog_note"]
        last = parse(contracts["last_pull_at"])
        assert last is not None
        assert parse(contracts["next_run_at"]) == last + timedelta(seconds=60)
        assert contracts["overdue"] is False
        assert all(connectors[name]["backlog"] == 0 for name in
                   ("employers", "permits", "payroll", "registry-contributors",
                    "registry-engagements"))
        api = connectors["labour-api"]
        assert api["type"] == "rest" and api["backlog"] is None
        assert api["backlog_note"].startswith("unknown until pulled; no cursor yet")
        assert api["last_pull_status"] == "failed" and api["last_success_at"] is None
        assert "127.0.0.1:1" in api["last_pull_error"]

        table = status()
        assert table.exit_code == 0, table.output
        text = table.output
        assert "scheduler   leader host:1:lead (epoch 1), lease expires in" in text
        assert "reconcile   last succeeded" in text and "(after-pull)" in text
        assert "outbox      3 events pending" in text
        assert "quarantine  0 rows" in text
        header = next(line for line in text.splitlines() if line.startswith("connector"))
        for column in ("type", "schedule", "cursor", "last pull", "last success", "next run",
                       "backlog"):
            assert column in header
        assert "1 — 1 files in" in text  # the contracts backlog
        assert "? — unknown until pulled" in text
        assert "last pull errors:" in text and "  labour-api: " in text
        assert "OVERDUE" not in text

        daemon.keeper.stop(release=True)
        released = status()
        assert "NO LEADER" in released.output and "host:1:lead (epoch 1)" in released.output
        assert json.loads(status("--json").output)["lease"]["state"] == "expired"
    finally:
        daemon.fence.close()
        daemon.app.engine.dispose()


def test_status_before_any_daemon_and_when_the_database_is_down(
        config: Path, example_inbox: Path, monkeypatch: pytest.MonkeyPatch,
        database_url: str) -> None:
    from reconciler.migrate import upgrade
    from reconciler.storage import create_db_engine

    engine = create_db_engine(database_url)
    upgrade(engine)
    engine.dispose()
    result = status()
    assert result.exit_code == 0, result.output
    assert "no lease yet (no daemon has run on this database)" in result.output
    assert "reconcile   never succeeded" in result.output
    data = json.loads(status("--json").output)
    contracts = next(c for c in data["connectors"] if c["name"] == "contracts")
    assert contracts["last_pull_at"] is None and contracts["backlog"] == 1
    assert parse(contracts["next_run_at"]) is not None  # due at the leader's first pass
    monkeypatch.setenv("RECONCILER_DATABASE_URL",
                       "postgresql+psycopg://u:secret@127.0.0.1:1/x?connect_timeout=2")
    down = CliRunner().invoke(main, ["status"])
    assert down.exit_code == 1
    assert "cannot read the database at postgresql+psycopg://u:***@127.0.0.1:1/x" in \
        down.output
    assert "secret" not in down.output
