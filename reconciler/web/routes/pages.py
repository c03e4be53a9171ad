"""Server-rendered pages (Jinja2), one small form per action, no JavaScript.

Every form carries the session's CSRF token; the session cookie is HttpOnly, SameSite=Strict
and Secure (unless ``RECONCILER_HTTP_COOKIE_SECURE=false`` for plain-HTTP development).
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi import Path as FastPath
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy import func, insert, select

from reconciler.audit import verify
from reconciler.review import InvalidError, ReviewDesk, ReviewError
from reconciler.storage import audit_log
from reconciler.web import queries
from reconciler.web.deps import SESSION_COOKIE, DeskDep, PageDep, PageSession, now
from reconciler.web.i18n import translator
from reconciler.web.routes.api import render_csv
from reconciler.web.security import (
    ROLES,
    AuthError,
    UserExists,
    add_user,
    authenticate,
    close_session,
    open_session,
)
from reconciler.web.tables import reversal_requests, saved_filters, users

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")
LOGIN_CSRF = "desk_login_csrf"
LANG = "desk_lang"
Filter = Annotated[queries.FindingFilter, Query()]


def _lang(request: Request) -> str:
    lang = request.query_params.get("lang") or request.cookies.get(LANG) or "en"
    return lang if lang in ("en", "ar") else "en"


def render(request: Request, name: str, context: dict[str, Any],
           status: int = 200) -> HTMLResponse:
    lang = _lang(request)
    response = templates.TemplateResponse(request, name, {
        "t": translator(lang), "lang": lang, "dir": "rtl" if lang == "ar" else "ltr",
        **context}, status_code=status)
    if request.query_params.get("lang") in ("en", "ar"):
        response.set_cookie(LANG, lang, samesite="strict", httponly=True,
                            secure=request.app.state.desk.settings.cookie_secure)
    return response


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return render(request, "error.html", {"status": status, "message": message}, status)


def _check_csrf(session: PageSession, token: str) -> None:
    if not hmac.compare_digest(session.csrf.encode(), token.encode()):
        raise ReviewError("the form is stale (CSRF token mismatch); reload the page")


def _require(session: PageSession, permission: str) -> None:
    if not session.user.can(permission):
        raise _Forbidden(f"the {session.user.role} role may not do this ({permission})")


class _Forbidden(ReviewError):
    status = 403


@router.get("/", response_class=RedirectResponse)
def home() -> RedirectResponse:
    return RedirectResponse("/queue", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, message: str | None = None) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", {"csrf": token, "message": message})
    response.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="strict",
                        secure=request.app.state.desk.settings.cookie_secure)
    return response


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, desk: DeskDep, username: Annotated[str, Form(max_length=64)],
          password: Annotated[str, Form(max_length=256)],
          csrf: Annotated[str, Form(max_length=100)]) -> Response:
    expected = request.cookies.get(LOGIN_CSRF) or ""
    if not expected or not hmac.compare_digest(expected.encode(), csrf.encode()):
        return error_page(request, 400, "the login form is stale; reload it")
    s = desk.settings
    with desk.engine.begin() as conn:
        try:
            user = authenticate(conn, username, password, now(), s.lockout_attempts,
                                timedelta(minutes=s.lockout_minutes))
        except AuthError as exc:
            failure = str(exc)
        else:
            token, _ = open_session(conn, user, "session", now(),
                                    timedelta(minutes=s.session_minutes))
            failure = ""
    if failure:
        return login_form(request, failure)
    target = "/users" if user.role == "admin" else (
        "/audit" if user.role == "auditor" else "/queue")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict",
                        secure=s.cookie_secure, max_age=s.session_minutes * 60)
    response.delete_cookie(LOGIN_CSRF)
    return response


@router.post("/logout")
def logout(desk: DeskDep, session: PageDep,
           csrf: Annotated[str, Form(max_length=100)]) -> Response:
    _check_csrf(session, csrf)
    with desk.engine.begin() as conn:
        close_session(conn, session.token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/queue", response_class=HTMLResponse)
def queue_page(request: Request, desk: DeskDep, session: PageDep, f: Filter,
               page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> HTMLResponse:
    _require(session, "findings.read")
    moment, size = now(), desk.settings.page_size
    user = session.user
    with desk.engine.begin() as conn:
        total, items = queries.queue(conn, f, user.username, moment, desk.settings, size,
                                     (page - 1) * size)
        ReviewDesk(conn, desk.registry, user.username, moment).record(
            "finding.list", None, {"filter": f.as_query(), "page": page,
                                   "shown": [i["finding_id"] for i in items]})
        saved = conn.execute(select(saved_filters.c.name, saved_filters.c.query)
                             .where(saved_filters.c.user_id == user.id)
                             .order_by(saved_filters.c.name)).all()
        pending = conn.execute(select(func.count()).select_from(reversal_requests)
                               .where(reversal_requests.c.status == "pending")).scalar_one()
    query = f.as_query()
    return render(request, "queue.html", {
        "session": session, "items": items, "total": total, "page": page,
        "pages": max(1, -(-total // size)), "f": f, "query": query,
        "qs": urlencode(query), "rules": desk.rules, "pending": pending,
        "saved": [(name, urlencode(q)) for name, q in saved],
        "statuses": ("todo", "all", *queries.STATUSES), "severities": queries.SEVERITIES})


@router.get("/queue.csv")
def queue_csv(desk: DeskDep, session: PageDep, f: Filter) -> Response:
    _require(session, "findings.read")
    return Response(render_csv(desk, session.user.username, f),
                    media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="findings.csv"'})


@router.post("/queue/filters")
async def save_filter(request: Request, desk: DeskDep, session: PageDep,
                      name: Annotated[str, Form(min_length=1, max_length=80)],
                      csrf: Annotated[str, Form(max_length=100)]) -> Response:
    _check_csrf(session, csrf)
    _require(session, "findings.read")
    form = await request.form()
    try:
        f = queries.FindingFilter.model_validate({k: v for k, v in form.items()
                                                  if k not in ("name", "csrf") and v})
    except ValidationError as exc:
        raise ReviewError(f"the filter is not valid: {exc.errors()[0]['msg']}") from None
    with desk.engine.begin() as conn:
        conn.execute(saved_filters.delete().where(saved_filters.c.user_id == session.user.id,
                                                  saved_filters.c.name == name))
        conn.execute(insert(saved_filters).values(user_id=session.user.id, name=name,
                                                  query=f.as_query(), created_at=now()))
    return RedirectResponse("/queue?" + urlencode(f.as_query()), status_code=303)


@router.post("/queue/bulk")
async def bulk(request: Request, desk: DeskDep, session: PageDep,
               decision: Annotated[str, Form(pattern="^(confirm|dismiss|escalate)$")],
               csrf: Annotated[str, Form(max_length=100)],
               reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    _check_csrf(session, csrf)
    _require(session, "findings.decide")
    form = await request.form()
    try:
        f = queries.FindingFilter.model_validate(
            {k: v for k, v in form.items() if k not in ("decision", "reason", "csrf") and v})
    except ValidationError as exc:
        raise ReviewError(f"the filter is not valid: {exc.errors()[0]['msg']}") from None
    with desk.engine.connect() as conn:
        ids = queries.selection(conn, f, session.user.username, now(), desk.settings,
                                desk.settings.page_size)
    for finding_id in ids:
        try:
            with desk.engine.begin() as conn:
                ReviewDesk(conn, desk.registry, session.user.username, now()).decide(
                    finding_id, decision, reason)
        except ReviewError:
            continue
    return RedirectResponse("/queue?" + urlencode(f.as_query()), status_code=303)


@router.get("/findings/{finding_id}", response_class=HTMLResponse)
def finding_page(request: Request, desk: DeskDep, session: PageDep,
                 finding_id: str) -> HTMLResponse:
    _require(session, "findings.read")
    moment = now()
    with desk.engine.begin() as conn:
        detail = queries.finding_detail(conn, finding_id, moment, desk.settings)
        if detail is None:
            return error_page(request, 404, f"no finding {finding_id}")
        ReviewDesk(conn, desk.registry, session.user.username, moment).record(
            "finding.view", finding_id, {"rule": detail["rule"]})
    return render(request, "finding.html", {"session": session, "f": detail})


@router.post("/findings/{finding_id}/decision")
def decide(desk: DeskDep, session: PageDep, finding_id: str,
           decision: Annotated[str, Form(pattern="^(confirm|dismiss|escalate|reverse)$")],
           csrf: Annotated[str, Form(max_length=100)],
           reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    _check_csrf(session, csrf)
    _require(session, "findings.decide")
    with desk.engine.begin() as conn:
        ReviewDesk(conn, desk.registry, session.user.username, now()).decide(
            finding_id, decision, reason)
    return RedirectResponse(f"/findings/{finding_id}", status_code=303)


@router.post("/findings/{finding_id}/take")
def take(desk: DeskDep, session: PageDep, finding_id: str,
         csrf: Annotated[str, Form(max_length=100)]) -> Response:
    _check_csrf(session, csrf)
    _require(session, "findings.decide")
    with desk.engine.begin() as conn:
        ReviewDesk(conn, desk.registry, session.user.username, now()).take(finding_id)
    return RedirectResponse(f"/findings/{finding_id}", status_code=303)


@router.post("/findings/{finding_id}/assign")
def assign(desk: DeskDep, session: PageDep, finding_id: str,
           assignee: Annotated[str, Form(min_length=1, max_length=64)],
           csrf: Annotated[str, Form(max_length=100)]) -> Response:
    _check_csrf(session, csrf)
    _require(session, "findings.assign")
    with desk.engine.begin() as conn:
        role = conn.execute(select(users.c.role).where(users.c.username == assignee)).scalar()
        if role not in ("officer", "supervisor"):
            raise InvalidError(f"assignee: {assignee!r} is not an officer or supervisor")
        ReviewDesk(conn, desk.registry, session.user.username, now()).take(
            finding_id, assignee)
    return RedirectResponse(f"/findings/{finding_id}", status_code=303)


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, desk: DeskDep, session: PageDep) -> HTMLResponse:
    _require(session, "users.manage")
    with desk.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(
            select(users.c.username, users.c.role, users.c.active, users.c.locked_until)
            .order_by(users.c.username)).mappings()]
    return render(request, "users.html", {"session": session, "rows": rows, "roles": ROLES})


@router.post("/users")
def add_user_form(desk: DeskDep, session: PageDep,
                  username: Annotated[str, Form(min_length=2, max_length=64,
                                                pattern=r"^[A-Za-z0-9._@-]+$")],
                  role: Annotated[str, Form(pattern="^(officer|supervisor|auditor|admin)$")],
                  password: Annotated[str, Form(min_length=10, max_length=256)],
                  csrf: Annotated[str, Form(max_length=100)]) -> Response:
    _check_csrf(session, csrf)
    _require(session, "users.manage")
    moment = now()
    with desk.engine.begin() as conn:
        try:
            add_user(conn, username, role, password, moment)
        except UserExists as exc:
            raise ReviewError(str(exc)) from None
        ReviewDesk(conn, desk.registry, session.user.username, moment).record(
            "user.add", username, {"role": role})
    return RedirectResponse("/users", status_code=303)


@router.post("/reversals/{request_id}")
def reversal(desk: DeskDep, session: PageDep,
             request_id: Annotated[int, FastPath(ge=1, le=2**63 - 1)],
             approve: Annotated[bool, Form()], csrf: Annotated[str, Form(max_length=100)],
             ) -> Response:
    _check_csrf(session, csrf)
    _require(session, "reversals.approve")
    with desk.engine.begin() as conn:
        out = ReviewDesk(conn, desk.registry, session.user.username, now()).approve_reversal(
            request_id, approve)
    return RedirectResponse(f"/findings/{out.finding_id}", status_code=303)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, desk: DeskDep, session: PageDep,
               page: Annotated[int, Query(ge=1, le=10_000_000)] = 1,
               action: Annotated[str | None, Query(max_length=48)] = None) -> HTMLResponse:
    _require(session, "audit.read")
    size = 100
    conds = [audit_log.c.action == action] if action else []
    with desk.engine.begin() as conn:
        ok, count, message = verify(conn)
        total = conn.execute(select(func.count()).select_from(audit_log).where(*conds)
                             ).scalar_one()
        rows = [dict(r) for r in conn.execute(
            select(audit_log).where(*conds).order_by(audit_log.c.id.desc())
            .limit(size).offset((page - 1) * size)).mappings()]
        ReviewDesk(conn, desk.registry, session.user.username, now()).record(
            "audit.view", None, {"page": page, "count": len(rows)})
    return render(request, "audit.html", {
        "session": session, "rows": rows, "ok": ok, "count": count, "message": message,
        "page": page, "pages": max(1, -(-int(total) // size)), "action": action or ""})
