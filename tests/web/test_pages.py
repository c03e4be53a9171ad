"""The server-rendered pages: sessions, CSRF on every form, roles, Arabic right to left."""

from __future__ import annotations

import re

from tests.web.conftest import PASSWORD, DeskWorld


def _login(desk: DeskWorld, username: str) -> str:
    c = desk.client
    form = c.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    r = c.post("/login", data={"username": username, "password": PASSWORD,
                               "csrf": csrf.group(1)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=strict" in cookie
    page = c.get(r.headers["location"])
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    return token.group(1) if token else ""


def test_pages_need_a_session(desk: DeskWorld) -> None:
    r = desk.client.get("/queue", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"


def test_login_form_without_its_csrf_token_is_refused(desk: DeskWorld) -> None:
    desk.client.get("/login")
    r = desk.client.post("/login", data={"username": "olga", "password": PASSWORD,
                                         "csrf": "forged"})
    assert r.status_code == 400 and "stale" in r.text


def test_a_decision_without_the_csrf_token_changes_nothing(desk: DeskWorld) -> None:
    _login(desk, "olga")
    c = desk.client
    r = c.post(f"/findings/{desk.wage}/decision",
               data={"decision": "dismiss", "reason": "x", "csrf": "forged"})
    assert r.status_code == 409 and "CSRF" in r.text
    assert c.post(f"/findings/{desk.wage}/decision",
                  data={"decision": "dismiss", "reason": "x"}).status_code == 422
    assert "open" in c.get(f"/findings/{desk.wage}").text


def test_officer_decides_in_the_page_and_sees_the_history(desk: DeskWorld) -> None:
    csrf = _login(desk, "olga")
    c = desk.client
    r = c.post(f"/findings/{desk.wage}/decision",
               data={"decision": "dismiss", "reason": "agreed wage", "csrf": csrf})
    assert r.status_code == 200
    assert 'id="status">dismissed<' in r.text and "dismissed: agreed wage" in r.text


def test_auditor_reads_but_cannot_decide(desk: DeskWorld) -> None:
    csrf = _login(desk, "aude")
    c = desk.client
    page = c.get(f"/findings/{desk.wage}")
    assert page.status_code == 200 and "decision-form" not in page.text
    r = c.post(f"/findings/{desk.wage}/decision",
               data={"decision": "confirm", "reason": "", "csrf": csrf})
    assert r.status_code == 403
    audit = c.get("/audit")
    assert audit.status_code == 200 and "chain intact" in audit.text


def test_arabic_pages_are_right_to_left(desk: DeskWorld) -> None:
    _login(desk, "olga")
    r = desk.client.get("/queue?lang=ar")
    assert '<html lang="ar" dir="rtl">' in r.text and "قائمة المهام" in r.text
    # the choice sticks (cookie) for the next page
    assert 'dir="rtl"' in desk.client.get(f"/findings/{desk.wage}").text


def test_queue_bad_filters_are_a_4xx_page_not_a_500(desk: DeskWorld) -> None:
    _login(desk, "olga")
    r = desk.client.get("/queue?min_age_days=-3&due_before=never")
    assert r.status_code == 422 and "min_age_days" in r.text and "due_before" in r.text
    assert desk.client.get("/findings/unknown").status_code == 404


def test_admin_adds_a_user_in_the_page_and_the_user_can_log_in(desk: DeskWorld) -> None:
    csrf = _login(desk, "adam")
    c = desk.client
    r = c.post("/users", data={"username": "nour", "role": "officer",
                               "password": "another long one", "csrf": csrf})
    assert r.status_code == 200 and "nour" in r.text
    assert c.post("/users", data={"username": "nour", "role": "officer",
                                  "password": "another long one", "csrf": csrf}
                  ).status_code == 409
    token = c.post("/api/v1/auth/token", data={"username": "nour",
                                               "password": "another long one"})
    assert token.status_code == 200
    assert c.get("/queue").status_code == 403  # an admin manages users, reads no findings


def test_supervisor_assigns_in_the_page_officer_may_not(desk: DeskWorld) -> None:
    csrf = _login(desk, "olga")
    assert desk.client.post(f"/findings/{desk.wage}/assign",
                            data={"assignee": "omar", "csrf": csrf}).status_code == 403
    csrf = _login(desk, "sam")
    r = desk.client.post(f"/findings/{desk.wage}/assign",
                         data={"assignee": "omar", "csrf": csrf})
    assert r.status_code == 200 and "assigned to omar" in r.text
    r = desk.client.post(f"/findings/{desk.wage}/assign",
                         data={"assignee": "aude", "csrf": csrf})
    assert r.status_code == 422 and "assignee" in r.text
