"""An officer's confirmation puts the registry right, for every sign that has something to
put right — and the next run sees it: the sign no longer holds, the finding is resolved.

A generated world (2,000 workers, seed 7) plants every sign; the test confirms one finding
of each of the three signs whose correction is not a plain wage or end date
(``wrong_employer``, ``identity_mismatch``, ``duplicate_contributor``) through the same
:class:`~reconciler.review.ReviewDesk` the desk and the API use, then reconciles again.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from reconciler.cli import main
from reconciler.config import load_settings
from reconciler.notify.tables import decision_notices
from reconciler.pipeline import Reconciler
from reconciler.review import ReviewDesk
from reconciler.storage import findings, outbox
from reconciler.synth.world import WorldSpec, generate_world, write_world


@pytest.fixture
def app(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Reconciler:
    inbox = tmp_path / "inbox"
    write_world(generate_world(WorldSpec(workers=2000, seed=7, as_of=date(2026, 11, 1))),
                inbox, tmp_path / "truth")
    monkeypatch.setenv("RECONCILER_DATABASE_URL", database_url)
    monkeypatch.setenv("RECONCILER_INBOX", str(inbox))
    monkeypatch.setenv("RECONCILER_AS_OF", "2026-11-01")
    for args in (["db", "upgrade"], ["run", "--once"]):
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return Reconciler.from_settings(load_settings(), migrate=False)


def open_findings(app: Reconciler, rule: str) -> list[dict[str, Any]]:
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(findings).where(findings.c.rule == rule, findings.c.status == "open")
            .order_by(findings.c.finding_id)).mappings()]


def confirm(app: Reconciler, finding_id: str) -> str:
    with app.engine.begin() as conn:
        desk = ReviewDesk(conn, app.registry, "olga", datetime.now(UTC))
        return desk.decide(finding_id, "confirm", "checked the documents").detail


def status_of(app: Reconciler, finding_id: str) -> tuple[str, str | None]:
    with app.engine.connect() as conn:
        row = conn.execute(select(findings.c.status, findings.c.resolution)
                           .where(findings.c.finding_id == finding_id)).one()
    return row[0], row[1]


def reconcile_again() -> None:
    result = CliRunner().invoke(main, ["run", "--once"], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_confirming_corrects_the_registry_and_the_next_run_resolves_the_finding(
        app: Reconciler) -> None:
    moved = open_findings(app, "wrong_employer")[0]
    mismatch = open_findings(app, "identity_mismatch")[0]
    duplicate = open_findings(app, "duplicate_contributor")[0]

    # wrong_employer: registered at A, working at B — A's engagement ends, B registers
    working_at = moved["employer_id"]
    registered_at = moved["details"]["registered_at"]
    note = confirm(app, moved["finding_id"])
    assert "ended" in note and "registered: engagement RG" in note
    contributor = next(e["key"] for e in moved["evidence"] if e["feed"] == "registry")
    with app.engine.connect() as conn:
        mine = app.registry.engagements_of(conn, [contributor])
    active = mine[mine["status"] == "ACTIVE"]
    assert set(active["employer_id"]) == {working_at}
    assert set(mine[mine["status"] == "ENDED"]["employer_id"]) >= set(registered_at)

    # identity_mismatch: the registry takes the value the partners agree on
    differences = mismatch["details"]["differences"]
    note = confirm(app, mismatch["finding_id"])
    assert "amended" in note
    with app.engine.connect() as conn:
        registry = app.registry.contributors(conn)
    record = registry[registry["contributor_id"] == mismatch["details"]["contributor_id"]]
    for column, diff in differences.items():
        assert list(record[column]) == [diff["partners"]]

    # duplicate_contributor: one record survives, the others leave the registry
    ids = duplicate["details"]["contributor_ids"]
    note = confirm(app, duplicate["finding_id"])
    assert "merged" in note
    with app.engine.connect() as conn:
        registry = app.registry.contributors(conn)
        engagements = app.registry.engagements(conn)
    left = set(registry["contributor_id"]) & set(ids)
    assert len(left) == 1
    assert not set(engagements["contributor_id"]) & (set(ids) - left)  # re-pointed

    with app.engine.connect() as conn:
        types = list(conn.execute(select(outbox.c.type)).scalars())
        notices = [dict(r) for r in conn.execute(select(decision_notices)).mappings()]
    assert types.count("org.reconciler.registration.corrected") >= 3
    # the employer where the worker works hears of the confirmation, the one where the
    # worker was registered hears its engagement ended; a duplicate names no employer
    told = {(n["employer_id"], n["decision"]) for n in notices
            if n["finding_id"] == moved["finding_id"]}
    assert told == {(working_at, "confirm")} | {(a, "ended") for a in registered_at}
    assert not [n for n in notices if n["finding_id"] == duplicate["finding_id"]]

    reconcile_again()
    for finding in (moved, mismatch, duplicate):
        assert status_of(app, finding["finding_id"]) == ("resolved", "condition_cleared"), \
            finding["rule"]
    # nothing new about these people was opened by the corrections themselves
    for rule in ("missing_registration", "stale_engagement", "ghost_registration"):
        assert not [f for f in open_findings(app, rule)
                    if f["person_id"] in (moved["person_id"], duplicate["person_id"])]
    app.engine.dispose()
