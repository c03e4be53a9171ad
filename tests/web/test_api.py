"""The JSON API over the worked example, on SQLite and PostgreSQL: every endpoint, bad input,
and what each role may and may not do."""

from __future__ import annotations

import csv
import io
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from reconciler.cli import main
from reconciler.storage import audit_log, findings, outbox, registrations
from tests.web.conftest import DeskWorld


def test_login_issues_a_token_and_repeated_failures_lock_the_account(desk: DeskWorld) -> None:
    c = desk.client
    bad = {"username": "olga", "password": "wrong password!"}
    for _ in range(3):  # lockout_attempts=3 in the fixture
        r = c.post("/api/v1/auth/token", data=bad)
        assert r.status_code == 401
    r = c.post("/api/v1/auth/token", data={"username": "olga", "password":
                                           "correct horse battery"})
    assert r.status_code == 401 and "locked" in r.json()["detail"]
    assert c.post("/api/v1/auth/token", data={"username": "nobody", "password": "x"}
                  ).status_code == 401
    assert c.get("/api/v1/findings").status_code == 401
    assert c.get("/api/v1/findings", headers={"Authorization": "Bearer forged"}
                 ).status_code == 401


def test_queue_filters_search_and_pages(desk: DeskWorld) -> None:
    h = desk.token("olga")
    get = lambda **q: desk.client.get("/api/v1/findings", headers=h, params=q)  # noqa: E731
    page = get().json()
    # both need a person: the open wage finding and the unconfirmed auto-registration
    assert page["total"] == 2
    assert [i["finding_id"] for i in get(rule="wage_underdeclared").json()["items"]] == [
        desk.wage]
    assert get(status="open").json()["total"] == 1
    assert get(q="imran").json()["items"][0]["finding_id"] == desk.wage
    assert get(q="2735590867").json()["items"][0]["finding_id"] == desk.missing  # Maria's ID
    assert get(employer_id="7000000017").json()["total"] == 0
    assert get(overdue="true").json()["total"] == 0  # first seen today, SLAs are days
    assert get(due_before="2099-01-01").json()["total"] == 2
    assert get(assignee="none").json()["total"] == 2
    assert get(limit=1, offset=1).json()["items"][0]["finding_id"] != \
        get(limit=1).json()["items"][0]["finding_id"]


def test_finding_page_data_explains_the_finding(desk: DeskWorld) -> None:
    r = desk.client.get(f"/api/v1/findings/{desk.wage}", headers=desk.token("olga"))
    assert r.status_code == 200
    f = r.json()
    assert "below" in f["reasoning"]
    assert f["facts"]["declared"] == 3750.0 and f["facts"]["evidence_wage"] == 5000.0
    payroll = next(p for p in f["comparison"] if p["feed"] == "payroll")
    wage = next(x for x in payroll["fields"] if x["field"] == "wage")
    assert (wage["partner"], wage["registry"], wage["differs"]) == (5000.0, 3750.0, True)
    assert any(w["words"].startswith("passport same: very strong evidence for")
               for link in f["links"] for w in link["weights"])
    assert [h["to_status"] for h in f["history"]] == ["open"]


def test_bad_input_gets_a_4xx_that_names_the_field(desk: DeskWorld) -> None:
    h = desk.token("olga")
    c = desk.client
    cases = [
        c.get("/api/v1/findings", headers=h, params={"limit": "many"}),
        c.get("/api/v1/findings", headers=h, params={"severity": "urgent"}),
        c.get("/api/v1/findings", headers=h, params={"due_before": "31/12/2026"}),
        c.post(f"/api/v1/findings/{desk.wage}/decisions", headers=h, json={"decision": "x"}),
        c.post(f"/api/v1/findings/{desk.wage}/decisions", headers=h, content=b"{not json",
               ),
        c.post(f"/api/v1/findings/{desk.wage}/decisions", headers=h,
               json={"decision": "dismiss", "reason": "   "}),
        c.post(f"/api/v1/findings/{desk.wage}/decisions", headers=h,
               json={"decision": "confirm", "extra": 1}),
    ]
    fields = ["limit", "severity", "due_before", "decision", "body", "reason", "extra"]
    for r, field in zip(cases, fields, strict=True):
        assert r.status_code == 422, r.text
        assert field in r.json()["detail"], (field, r.json())
    r = c.post("/api/v1/findings/no-such-finding/decisions", headers=h,
               json={"decision": "confirm"})
    assert r.status_code == 404 and "no finding" in r.json()["detail"]
    assert c.get("/api/v1/findings/no-such-finding", headers=h).status_code == 404
    # found by schemathesis: an id past 64 bits was a 500 (SQLite overflow)
    r = c.post(f"/api/v1/reversals/{2**63}/approval", headers=desk.token("sam"),
               json={"approve": False})
    assert r.status_code == 422 and "request_id" in r.json()["detail"]


@pytest.mark.parametrize(("role_user", "allowed"), [
    ("olga", {"read", "decide"}), ("sam", {"read", "decide", "approve"}),
    ("aude", {"read", "audit"}), ("adam", {"users"})])
def test_every_role_gets_exactly_its_rights(desk: DeskWorld, role_user: str,
                                            allowed: set[str]) -> None:
    h = desk.token(role_user)
    c = desk.client
    expect = lambda right: (200, 201) if right in allowed else (403,)  # noqa: E731
    assert c.get("/api/v1/findings", headers=h).status_code in expect("read")
    assert c.get(f"/api/v1/findings/{desk.wage}", headers=h).status_code in expect("read")
    assert c.get("/api/v1/exports/findings.csv", headers=h).status_code in expect("read")
    assert c.post(f"/api/v1/findings/{desk.wage}/decisions", headers=h,
                  json={"decision": "escalate"}).status_code in expect("decide")
    assert c.get("/api/v1/audit", headers=h).status_code in expect("audit")
    assert c.get("/api/v1/audit/verification", headers=h).status_code in expect("audit")
    assert c.get("/api/v1/users", headers=h).status_code in expect("users")
    assert c.post("/api/v1/users", headers=h, json={
        "username": f"new-{role_user}", "role": "officer", "password": "a long password"}
    ).status_code in expect("users")
    assert c.post("/api/v1/reversals/999/approval", headers=h, json={"approve": True}
                  ).status_code in ((404,) if "approve" in allowed else (403,))
    assert c.get("/api/v1/users/me", headers=h).json()["username"] == role_user


def test_officer_clears_both_findings_and_everything_is_recorded(desk: DeskWorld) -> None:
    h = desk.token("olga")
    c = desk.client
    r = c.post(f"/api/v1/findings/{desk.wage}/decisions", headers=h,
               json={"decision": "confirm", "reason": "payroll shows 5,000"})
    assert r.status_code == 201 and r.json()["status"] == "confirmed"
    r = c.post(f"/api/v1/findings/{desk.missing}/decisions", headers=h,
               json={"decision": "confirm"})
    assert r.status_code == 201 and r.json()["status"] == "resolved"
    assert c.get("/api/v1/findings", headers=h).json()["total"] == 0  # nothing left to do
    again = c.post(f"/api/v1/findings/{desk.wage}/decisions", headers=h,
                   json={"decision": "dismiss", "reason": "changed my mind"})
    assert again.status_code == 409
    with desk.app.engine.connect() as conn:
        events = conn.execute(select(outbox.c.type, outbox.c.payload)
                              .where(outbox.c.type == "org.reconciler.finding.updated")).all()
        actions = list(conn.execute(select(audit_log.c.action, audit_log.c.actor)
                                    .where(audit_log.c.action == "finding.decision")).all())
    assert len(events) == 2 and all(p["by"] == "olga" for _, p in events)
    assert not any("Imran" in str(p) or "2517730046" in str(p) for _, p in events)
    assert actions == [("finding.decision", "olga")] * 2
    audit = c.get("/api/v1/audit", headers=desk.token("aude"),
                  params={"action": "finding.decision"}).json()
    assert {e["subject"] for e in audit["items"]} == {desk.wage, desk.missing}
    assert c.get("/api/v1/audit/verification", headers=desk.token("aude")).json()["ok"]


def test_views_of_personal_data_are_audited(desk: DeskWorld) -> None:
    h = desk.token("aude")
    desk.client.get(f"/api/v1/findings/{desk.wage}", headers=h)
    desk.client.get("/api/v1/exports/findings.csv", headers=h)
    with desk.app.engine.connect() as conn:
        seen = conn.execute(select(audit_log.c.action, audit_log.c.subject)
                            .where(audit_log.c.actor == "aude")).all()
    assert ("finding.view", desk.wage) in seen
    assert ("finding.export", None) in seen


def test_dismissed_finding_stays_dismissed_on_the_same_evidence(desk: DeskWorld) -> None:
    h = desk.token("olga")
    r = desk.client.post(f"/api/v1/findings/{desk.wage}/decisions", headers=h,
                         json={"decision": "dismiss", "reason": "wage agreed in writing"})
    assert r.status_code == 201
    result = CliRunner().invoke(main, ["run", "--once"], catch_exceptions=False)
    assert result.exit_code == 0
    with desk.app.engine.connect() as conn:
        status = conn.execute(select(findings.c.status)
                              .where(findings.c.finding_id == desk.wage)).scalar_one()
    assert status == "dismissed"


def test_reversing_an_auto_registration_needs_a_second_person(desk: DeskWorld) -> None:
    c = desk.client
    sam, sara = desk.token("sam"), desk.token("sara")
    r = c.post(f"/api/v1/findings/{desk.missing}/decisions", headers=sam,
               json={"decision": "reverse"})
    assert r.status_code == 422 and "reason" in r.json()["detail"]
    r = c.post(f"/api/v1/findings/{desk.missing}/decisions", headers=sam,
               json={"decision": "reverse", "reason": "a look-alike, not her"})
    assert r.status_code == 201
    [req] = c.get("/api/v1/reversals", headers=sam, params={"status": "pending"}).json()
    own = c.post(f"/api/v1/reversals/{req['id']}/approval", headers=sam, json={"approve": True})
    assert own.status_code == 403 and "four-eyes" in own.json()["detail"]
    officer = c.post(f"/api/v1/reversals/{req['id']}/approval", headers=desk.token("olga"),
                     json={"approve": True})
    assert officer.status_code == 403
    ok = c.post(f"/api/v1/reversals/{req['id']}/approval", headers=sara, json={"approve": True})
    assert ok.status_code == 200 and ok.json()["status"] == "dismissed"
    with desk.app.engine.connect() as conn:
        payloads = conn.execute(select(registrations.c.payload)).scalars().all()
        engagements = desk.app.registry.engagements(conn)
    assert all(p.get("reversed_at") for p in payloads)
    assert not engagements["engagement_id"].astype(str).str.startswith("RG").any()
    # the next run does not register her again: the finding stays dismissed
    assert CliRunner().invoke(main, ["run", "--once"]).exit_code == 0
    detail = c.get(f"/api/v1/findings/{desk.missing}", headers=sam).json()
    assert detail["status"] == "dismissed" and detail["resolution"] == "registration_reversed"


def test_supervisor_assigns_officer_takes_and_bulk_escalates(desk: DeskWorld) -> None:
    c = desk.client
    r = c.post(f"/api/v1/findings/{desk.wage}/assignment", headers=desk.token("olga"),
               json={"assignee": "omar"})
    assert r.status_code == 403
    r = c.post(f"/api/v1/findings/{desk.wage}/assignment", headers=desk.token("sam"),
               json={"assignee": "omar"})
    assert r.status_code == 200 and r.json()["status"] == "in_review"
    omar = desk.token("omar")
    mine = c.get("/api/v1/findings", headers=omar, params={"assignee": "me"}).json()
    assert [i["finding_id"] for i in mine["items"]] == [desk.wage]
    r = c.post("/api/v1/decisions/bulk", headers=omar,
               json={"decision": "escalate", "filter": {"assignee": "me"}})
    assert r.status_code == 200 and [d["finding_id"] for d in r.json()["decided"]] == [
        desk.wage]
    r = c.post("/api/v1/filters", headers=omar,
               json={"name": "mine", "filter": {"assignee": "me", "severity": "high"}})
    assert r.status_code == 201
    assert c.post("/api/v1/filters", headers=omar, json={"name": "mine", "filter": {}}
                  ).status_code == 409
    assert c.get("/api/v1/filters", headers=omar).json()[0]["filter"]["assignee"] == "me"


def test_csv_export_of_a_view(desk: DeskWorld) -> None:
    r = desk.client.get("/api/v1/exports/findings.csv", headers=desk.token("olga"),
                        params={"rule": "wage_underdeclared"})
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["finding_id"] for row in rows] == [desk.wage]


def test_an_edited_audit_row_is_detected(desk: DeskWorld) -> None:
    c = desk.client
    c.post(f"/api/v1/findings/{desk.wage}/decisions", headers=desk.token("olga"),
           json={"decision": "dismiss", "reason": "ok"})
    aude = desk.token("aude")
    assert c.get("/api/v1/audit/verification", headers=aude).json()["ok"]
    with desk.app.engine.begin() as conn:
        row = conn.execute(select(audit_log.c.id).where(
            audit_log.c.action == "finding.decision")).scalar_one()
        conn.execute(audit_log.update().where(audit_log.c.id == row)
                     .values(details={"decision": "confirm"}))
    chain = c.get("/api/v1/audit/verification", headers=aude).json()
    assert not chain["ok"] and f"entry {row}" in chain["message"]
    assert CliRunner().invoke(main, ["audit", "verify"]).exit_code == 1


def test_confirming_an_open_missing_registration_registers_through_the_gateway(
        desk: DeskWorld) -> None:
    # Make Maria's finding one that went to review instead of being auto-registered: undo
    # the auto-registration and reopen the finding.
    now = datetime.now(UTC)
    with desk.app.engine.begin() as conn:
        desk.app.registry.reverse(conn, desk.missing, now, "test set-up")
        worker = conn.execute(select(findings.c.worker)
                              .where(findings.c.finding_id == desk.missing)).scalar_one()
        conn.execute(findings.update().where(findings.c.finding_id == desk.missing)
                     .values(status="open", resolution=None, resolved_at=None,
                             action="review", worker={**worker, "contributor_id": None,
                                                      "contributor_ids": []}))
    r = desk.client.post(f"/api/v1/findings/{desk.missing}/decisions",
                         headers=desk.token("olga"), json={"decision": "confirm"})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "confirmed" and "registered: engagement RG" in r.json()["detail"]
    with desk.app.engine.connect() as conn:
        live = desk.app.registry.engagements(conn)
        types = list(conn.execute(select(outbox.c.type).order_by(outbox.c.id)).scalars())
    mine = live[live["registered_by"] == "reconciler"]
    # one new engagement at the finding's employer, from the employment start, at the
    # evidence wage (basic 3,500 + housing 875 on her payroll line)
    assert list(mine["employer_id"]) == ["7000000025"]
    assert list(mine["contributory_wage"]) == [4375.0]
    assert str(mine["start_date"].iloc[0]) == "2026-08-03"
    assert types[-2:] == ["org.reconciler.registration.registered",
                          "org.reconciler.finding.updated"]
    # the next run sees her registered: the condition is cleared and the finding resolved
    assert CliRunner().invoke(main, ["run", "--once"]).exit_code == 0
    with desk.app.engine.connect() as conn:
        row = conn.execute(select(findings.c.status, findings.c.resolution)
                           .where(findings.c.finding_id == desk.missing)).one()
    assert tuple(row) == ("resolved", "condition_cleared")


def test_confirming_an_underdeclared_wage_corrects_it_through_the_gateway(
        desk: DeskWorld) -> None:
    # Imran is declared at 3,750 against 5,000 paid (basic 4,000 + housing 1,000): the
    # officer's confirmation sets the declared wage to 5,000 in the registry.
    r = desk.client.post(f"/api/v1/findings/{desk.wage}/decisions",
                         headers=desk.token("olga"), json={"decision": "confirm"})
    assert r.status_code == 201, r.text
    assert "declared wage set to 5,000.00" in r.json()["detail"]
    with desk.app.engine.connect() as conn:
        live = desk.app.registry.engagements(conn)
        types = list(conn.execute(select(outbox.c.type).order_by(outbox.c.id)).scalars())
    imran = live[live["engagement_id"] == "G000000202"]
    assert list(imran["contributory_wage"]) == [5000.0]
    assert "org.reconciler.registration.corrected" in types
    # the next run finds the wage declared in full: the finding is resolved
    assert CliRunner().invoke(main, ["run", "--once"]).exit_code == 0
    with desk.app.engine.connect() as conn:
        row = conn.execute(select(findings.c.status, findings.c.resolution)
                           .where(findings.c.finding_id == desk.wage)).one()
    assert tuple(row) == ("resolved", "condition_cleared")


def test_concurrent_requests_never_fork_the_audit_chain(desk: DeskWorld) -> None:
    # Eight threads view and decide at once; each append must see the previous one's tip.
    headers = {u: desk.token(u) for u in ("olga", "omar", "sam", "aude")}

    def work(user: str) -> None:
        for _ in range(3):
            desk.client.get(f"/api/v1/findings/{desk.wage}", headers=headers[user])
            desk.client.get("/api/v1/findings", headers=headers[user])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, list(headers) * 2))
    chain = desk.client.get("/api/v1/audit/verification", headers=headers["aude"]).json()
    assert chain["ok"], chain
    assert chain["entries"] >= 3 + 8 * 3 * 2
