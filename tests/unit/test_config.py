"""Settings: defaults, environment overrides, and errors that list every problem."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.config import load_settings
from reconciler.errors import ConfigError


def test_repository_config_is_valid_and_the_environment_overrides_it() -> None:
    settings = load_settings(env={"RECONCILER_DATABASE_URL": "sqlite:////tmp/x.db",
                                  "RECONCILER_INBOX": "/data/inbox",
                                  "RECONCILER_AS_OF": "2026-11-01"})
    assert settings.database_url == "sqlite:////tmp/x.db"
    assert settings.inbox == Path("/data/inbox")
    assert settings.today() == date(2026, 11, 1)
    assert {c.feed for c in settings.connectors} == {
        "contracts", "permits", "payroll", "employers", "contributors", "engagements"}
    assert settings.rules_path.exists()


def test_every_problem_is_reported_with_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "database_url: 'postgresql+psycopg://app:hunter2@db/reconciler'\n"
        "identity: {auto_threshold: 'high', review_threshold: 2}\n"
        "connectors:\n  - {name: contracts, feed: contrakts, path: contracts}\n"
        "unknown_key: 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    text = str(info.value)
    assert "a password does not belong in the file" in text
    assert "identity.auto_threshold" in text
    assert "identity.review_threshold" in text
    assert "connectors.0.feed" in text
    assert "unknown_key" in text
    assert text.count(str(path)) >= 5  # each problem names the file


def test_bad_environment_value_is_blamed_on_the_environment() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={"RECONCILER_AS_OF": "01/11/2026"})
    assert "environment: as_of" in str(info.value)


def test_config_check_command(tmp_path: Path) -> None:
    ok = CliRunner().invoke(main, ["config", "check"])
    assert ok.exit_code == 0, ok.output
    assert "configuration valid: 6 connectors, 8 signs" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("identity: {auto_threshold: 0.5, review_threshold: 0.9}\n")
    failed = CliRunner().invoke(main, ["--config", str(bad), "config", "check"])
    assert failed.exit_code == 2
    assert "review_threshold must be below auto_threshold" in failed.output


def test_rules_file_errors_name_the_sign(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(
        "version: 1\nsigns:\n  odd:\n    check: no_such_check\n    version: 1\n"
        "    severity: urgent\n    action: review\n    description: x\n")
    (tmp_path / "reconciler.yaml").write_text("rules_file: rules.yaml\n")
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "reconciler.yaml"),
                                       "config", "check"])
    assert result.exit_code == 2
    assert "signs.odd.severity" in result.output


def test_each_sign_has_its_review_deadline_in_the_catalogue() -> None:
    from reconciler.rules.catalogue import load_catalogue
    from reconciler.web.settings import load_web_settings

    catalogue = load_catalogue(load_settings(env={}).rules_path)
    assert catalogue.sla_days()["missing_registration"] == 10
    web = load_web_settings(env={"RECONCILER_SLA_DAYS": "wage_underdeclared=5"},
                            sla_days=catalogue.sla_days())
    assert web.sla_for("missing_registration") == 10  # from config/rules.yaml
    assert web.sla_for("wage_underdeclared") == 5  # the environment overrides one sign
