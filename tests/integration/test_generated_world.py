"""A generated world end to end: every sign found, nothing wrongly auto-registered.

The world (2,000 workers, seed 7) plants every sign of the catalogue with its ground truth,
plus the noise the identity stage must see through (transliterations, typos, renewed
passports, border numbers, Hijri dates, look-alikes, malformed and re-delivered rows).
The thresholds below are the product's quality bar, not a snapshot of today's output.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.evaluate import evaluate
from reconciler.synth.world import WorldSpec, generate_world, write_world


@pytest.fixture
def world(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    inbox, truth = tmp_path / "inbox", tmp_path / "truth"
    write_world(generate_world(WorldSpec(workers=2000, seed=7, as_of=date(2026, 11, 1))),
                inbox, truth)
    monkeypatch.setenv("RECONCILER_DATABASE_URL", database_url)
    monkeypatch.setenv("RECONCILER_INBOX", str(inbox))
    monkeypatch.setenv("RECONCILER_AS_OF", "2026-11-01")
    return truth


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_every_sign_is_found_and_auto_registration_is_never_wrong(world: Path) -> None:
    run("db", "upgrade")
    run("run", "--once")
    findings = [json.loads(line) for line in run("findings", "export").splitlines()]
    result = evaluate(findings, world)
    for rule, score in result.rules.items():
        assert score.f1 >= 0.95, f"{rule}: {score}"
    assert result.macro_f1 >= 0.97
    assert result.auto_register_count > 0
    assert result.auto_register_precision == 1.0
    planted = sum(1 for _ in (world / "quarantine.csv").open()) - 1
    assert run("quarantine", "list").startswith(f"{planted} quarantined rows")

    # and a second run over the same inbox changes nothing
    run("run", "--once")
    assert [json.loads(line) for line in run("findings", "export").splitlines()] == findings
