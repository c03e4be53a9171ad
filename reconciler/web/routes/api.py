"""The JSON API under ``/api/v1``: auth, findings, decisions, reversals, audit, users."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import StreamingResponse
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import func, insert, select

from reconciler.audit import verify
from reconciler.export import iter_findings, write_csv
from reconciler.review import ReviewDesk, ReviewError
from reconciler.storage import audit_log
from reconciler.web import queries
from reconciler.web.deps import Admin, ApiUser, Auditor, Decider, DeskDep, Reader, Supervisor, now
from reconciler.web.schemas import (
    AssignmentCreate,
    AuditEntryPublic,
    AuditPage,
    BulkDecisionCreate,
    BulkDecisionPublic,
    ChainPublic,
    DecisionCreate,
    DecisionPublic,
    FindingPage,
    FindingPublic,
    FindingSummaryPublic,
    ReversalApprovalCreate,
    ReversalPublic,
    SavedFilterCreate,
    SavedFilterPublic,
    Token,
    UserCreate,
    UserPublic,
)
from reconciler.web.security import AuthError, UserExists, add_user, authenticate, open_session
from reconciler.web.tables import reversal_requests, saved_filters, users

router = APIRouter(prefix="/api/v1")
Filter = Annotated[queries.FindingFilter, Query()]
Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"description": "no such finding"}}
FORBIDDEN: Responses = {403: {"description": "the role may not do this"},
                        401: {"description": "not authenticated"}}


@router.post("/auth/token", response_model=Token, tags=["auth"],
             responses={401: {"description": "wrong credentials or locked account"}})
def issue_token(desk: DeskDep,
                form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    """OAuth2 password flow; repeated failures lock the account for a while."""
    s = desk.settings
    with desk.engine.begin() as conn:
        try:
            user = authenticate(conn, form.username, form.password, now(),
                                s.lockout_attempts, timedelta(minutes=s.lockout_minutes))
        except AuthError as exc:
            failure = str(exc)
        else:
            token, _ = open_session(conn, user, "bearer", now(),
                                    timedelta(minutes=s.token_minutes))
            return Token(access_token=token, expires_in=s.token_minutes * 60)
    raise HTTPException(401, failure, headers={"WWW-Authenticate": "Bearer"})


@router.get("/findings", response_model=FindingPage, tags=["findings"], responses=FORBIDDEN)
def list_findings(desk: DeskDep, user: Reader, f: Filter,
                  limit: Annotated[int, Query(ge=1, le=500)] = 50,
                  offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> FindingPage:
    """The queue: overdue first, then by due date (first seen + the rule's SLA)."""
    moment = now()
    with desk.engine.begin() as conn:
        total, items = queries.queue(conn, f, user.username, moment, desk.settings,
                                     limit, offset)
        ReviewDesk(conn, desk.registry, user.username, moment).record(
            "finding.list", None, {"filter": f.as_query(), "offset": offset,
                                   "shown": [i["finding_id"] for i in items]})
    return FindingPage(total=total, limit=limit, offset=offset,
                       items=[FindingSummaryPublic(**i) for i in items])


@router.get("/findings/{finding_id}", response_model=FindingPublic, tags=["findings"],
            responses={**NOT_FOUND, **FORBIDDEN})
def get_finding(desk: DeskDep, user: Reader, finding_id: str) -> FindingPublic:
    moment = now()
    with desk.engine.begin() as conn:
        detail = queries.finding_detail(conn, finding_id, moment, desk.settings)
        if detail is None:
            raise HTTPException(404, f"no finding {finding_id}")
        ReviewDesk(conn, desk.registry, user.username, moment).record(
            "finding.view", finding_id, {"rule": detail["rule"]})
    return FindingPublic(**detail)


def _decide(desk: DeskDep, actor: str, finding_id: str,
            body: DecisionCreate) -> DecisionPublic:
    with desk.engine.begin() as conn:
        out = ReviewDesk(conn, desk.registry, actor, now()).decide(
            finding_id, body.decision, body.reason)
    return DecisionPublic(**out.__dict__)


@router.post("/findings/{finding_id}/decisions", response_model=DecisionPublic,
             tags=["decisions"], status_code=201,
             responses={**NOT_FOUND, **FORBIDDEN,
                        409: {"description": "the finding cannot take this decision now"},
                        422: {"description": "bad input, e.g. a dismissal without a reason"}})
def decide(desk: DeskDep, user: Decider, finding_id: str,
           body: DecisionCreate) -> DecisionPublic:
    return _decide(desk, user.username, finding_id, body)


@router.post("/findings/{finding_id}/assignment", response_model=DecisionPublic,
             tags=["decisions"], responses={**NOT_FOUND, **FORBIDDEN})
def assign(desk: DeskDep, user: Decider, finding_id: str,
           body: AssignmentCreate) -> DecisionPublic:
    """Take a finding; supervisors may assign it to another officer or supervisor."""
    if body.assignee and body.assignee != user.username:
        if not user.can("findings.assign"):
            raise HTTPException(403, "only a supervisor may assign to someone else")
        with desk.engine.connect() as conn:
            role = conn.execute(select(users.c.role)
                                .where(users.c.username == body.assignee)).scalar()
        if role not in ("officer", "supervisor"):
            raise HTTPException(422, f"assignee: {body.assignee!r} is not an officer or "
                                     "supervisor")
    with desk.engine.begin() as conn:
        out = ReviewDesk(conn, desk.registry, user.username, now()).take(
            finding_id, body.assignee)
    return DecisionPublic(**out.__dict__)


@router.post("/decisions/bulk", response_model=BulkDecisionPublic, tags=["decisions"],
             responses=FORBIDDEN)
def bulk_decide(desk: DeskDep, user: Decider, body: BulkDecisionCreate) -> BulkDecisionPublic:
    """The same decision on every finding the filter selects (at most ``limit``); each
    finding is its own unit of work, so one that cannot take it is skipped, not fatal."""
    if body.decision == "reverse":
        raise HTTPException(422, "decision: reversals are requested one finding at a time")
    with desk.engine.connect() as conn:
        ids = queries.selection(conn, body.filter, user.username, now(), desk.settings,
                                body.limit)
    decided, skipped = [], []
    one = DecisionCreate(decision=body.decision, reason=body.reason)
    for finding_id in ids:
        try:
            decided.append(_decide(desk, user.username, finding_id, one))
        except ReviewError as exc:
            skipped.append({"finding_id": finding_id, "reason": str(exc)})
    return BulkDecisionPublic(decided=decided, skipped=skipped)


@router.get("/reversals", response_model=list[ReversalPublic], tags=["decisions"],
            responses=FORBIDDEN)
def list_reversals(desk: DeskDep, user: Reader,
                   status: Annotated[str | None, Query(pattern="^(pending|approved|rejected)$")]
                   = None) -> list[ReversalPublic]:
    query = select(reversal_requests).order_by(reversal_requests.c.id)
    if status:
        query = query.where(reversal_requests.c.status == status)
    with desk.engine.connect() as conn:
        return [ReversalPublic(**r) for r in conn.execute(query).mappings()]


@router.post("/reversals/{request_id}/approval", response_model=DecisionPublic,
             tags=["decisions"], responses={404: {"description": "no such request"},
                                            **FORBIDDEN})
def approve_reversal(desk: DeskDep, user: Supervisor,
                     request_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
                     body: ReversalApprovalCreate) -> DecisionPublic:
    """Four-eyes: a supervisor other than the requester approves (or rejects) a reversal."""
    with desk.engine.begin() as conn:
        out = ReviewDesk(conn, desk.registry, user.username, now()).approve_reversal(
            request_id, body.approve)
    return DecisionPublic(**out.__dict__)


@router.get("/exports/findings.csv", tags=["findings"], responses=FORBIDDEN,
            response_class=StreamingResponse)
def export_csv(desk: DeskDep, user: Reader, f: Filter) -> StreamingResponse:
    """The contract's CSV export, of exactly the findings the filter selects."""
    return StreamingResponse(iter([render_csv(desk, user.username, f)]),
                             media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition":
                                      'attachment; filename="findings.csv"'})


def render_csv(desk: DeskDep, actor: str, f: queries.FindingFilter) -> str:
    moment = now()
    with desk.engine.begin() as conn:
        ids = set(queries.selection(conn, f, actor, moment, desk.settings, 1_000_000))
        out = io.StringIO()
        count = write_csv((r for r in iter_findings(conn) if r["finding_id"] in ids), out)
        ReviewDesk(conn, desk.registry, actor, moment).record(
            "finding.export", None, {"filter": f.as_query(), "count": count})
    return out.getvalue()


@router.get("/audit", response_model=AuditPage, tags=["audit"], responses=FORBIDDEN)
def list_audit(desk: DeskDep, user: Auditor,
               action: Annotated[str | None, Query(max_length=48)] = None,
               actor: Annotated[str | None, Query(max_length=64)] = None,
               subject: Annotated[str | None, Query(max_length=240)] = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               offset: Annotated[int, Query(ge=0, le=100_000_000)] = 0) -> AuditPage:
    """The audit log, newest first (viewing it is itself audited)."""
    conds = [c for c in (audit_log.c.action == action if action else None,
                         audit_log.c.actor == actor if actor else None,
                         audit_log.c.subject == subject if subject else None) if c is not None]
    with desk.engine.begin() as conn:
        total = conn.execute(select(func.count()).select_from(audit_log).where(*conds)
                             ).scalar_one()
        rows = conn.execute(select(audit_log).where(*conds).order_by(audit_log.c.id.desc())
                            .limit(limit).offset(offset)).mappings().all()
        items = [AuditEntryPublic(**r) for r in rows]
        ReviewDesk(conn, desk.registry, user.username, now()).record(
            "audit.view", None, {"offset": offset, "count": len(items)})
    return AuditPage(total=int(total), items=items)


@router.get("/audit/verification", response_model=ChainPublic, tags=["audit"],
            responses=FORBIDDEN)
def verify_chain(desk: DeskDep, user: Auditor) -> ChainPublic:
    with desk.engine.connect() as conn:
        ok, count, message = verify(conn)
    return ChainPublic(ok=ok, entries=count, message=message)


@router.get("/users/me", response_model=UserPublic, tags=["users"], responses=FORBIDDEN)
def me(user: ApiUser) -> UserPublic:
    return UserPublic(id=user.id, username=user.username, role=user.role)


@router.get("/users", response_model=list[UserPublic], tags=["users"], responses=FORBIDDEN)
def list_users(desk: DeskDep, user: Admin) -> list[UserPublic]:
    with desk.engine.connect() as conn:
        rows = conn.execute(select(users).order_by(users.c.username)).mappings().all()
    return [UserPublic(**{k: r[k] for k in ("id", "username", "role", "active",
                                            "locked_until")}) for r in rows]


@router.post("/users", response_model=UserPublic, tags=["users"], status_code=201,
             responses={**FORBIDDEN, 409: {"description": "the username is taken"}})
def create_user(desk: DeskDep, user: Admin, body: UserCreate) -> UserPublic:
    moment = now()
    with desk.engine.begin() as conn:
        try:
            created = add_user(conn, body.username, body.role, body.password, moment)
        except UserExists as exc:
            raise HTTPException(409, str(exc)) from None
        ReviewDesk(conn, desk.registry, user.username, moment).record(
            "user.add", body.username, {"role": body.role})
    return UserPublic(id=created.id, username=created.username, role=created.role)


@router.get("/filters", response_model=list[SavedFilterPublic], tags=["findings"],
            responses=FORBIDDEN)
def list_filters(desk: DeskDep, user: Reader) -> list[SavedFilterPublic]:
    with desk.engine.connect() as conn:
        return [SavedFilterPublic(id=r.id, name=r.name, filter=r.query) for r in conn.execute(
            select(saved_filters).where(saved_filters.c.user_id == user.id)
            .order_by(saved_filters.c.name))]


@router.post("/filters", response_model=SavedFilterPublic, tags=["findings"], status_code=201,
             responses={**FORBIDDEN, 409: {"description": "a filter of that name exists"}})
def save_filter(desk: DeskDep, user: Reader, body: SavedFilterCreate) -> SavedFilterPublic:
    query: dict[str, Any] = body.filter.as_query()
    with desk.engine.begin() as conn:
        taken = conn.execute(select(saved_filters.c.id).where(
            saved_filters.c.user_id == user.id, saved_filters.c.name == body.name)).first()
        if taken:
            raise HTTPException(409, f"name: you already have a filter called {body.name!r}")
        new_id = conn.execute(insert(saved_filters).values(
            user_id=user.id, name=body.name, query=query, created_at=now())
            .returning(saved_filters.c.id)).scalar_one()
    return SavedFilterPublic(id=int(new_id), name=body.name, filter=query)


