"""Dependencies as ``Annotated`` aliases, so a route reads as plain types."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import Engine

from reconciler.registry import RegistryGateway
from reconciler.web.security import User, session_user
from reconciler.web.settings import WebSettings

SESSION_COOKIE = "desk_session"
oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


@dataclass(frozen=True)
class Desk:
    """What every route needs, built once by ``create_app``."""

    settings: WebSettings
    engine: Engine
    registry: RegistryGateway
    rules: tuple[str, ...]


def get_desk(request: Request) -> Desk:
    desk: Desk = request.app.state.desk
    return desk


DeskDep = Annotated[Desk, Depends(get_desk)]


def now() -> datetime:
    return datetime.now(UTC)


def api_user(desk: DeskDep, token: Annotated[str | None, Depends(oauth2)]) -> User:
    if not token:
        raise HTTPException(401, "not authenticated: send `Authorization: Bearer <token>` "
                                 "from POST /api/v1/auth/token",
                            headers={"WWW-Authenticate": "Bearer"})
    with desk.engine.connect() as conn:
        found = session_user(conn, token, "bearer", now())
    if found is None:
        raise HTTPException(401, "the bearer token is unknown or expired; get a new one",
                            headers={"WWW-Authenticate": "Bearer"})
    return found[0]


ApiUser = Annotated[User, Depends(api_user)]


def require(permission: str) -> Callable[[User], User]:
    def check(user: ApiUser) -> User:
        if not user.can(permission):
            raise HTTPException(403, f"the {user.role} role may not do this ({permission})")
        return user
    return check


Reader = Annotated[User, Depends(require("findings.read"))]
Decider = Annotated[User, Depends(require("findings.decide"))]
Supervisor = Annotated[User, Depends(require("reversals.approve"))]
Auditor = Annotated[User, Depends(require("audit.read"))]
Admin = Annotated[User, Depends(require("users.manage"))]


@dataclass(frozen=True)
class PageSession:
    user: User
    csrf: str
    token: str


class LoginRequired(Exception):
    """A page needs a session: the handler redirects to the login page."""


def page_session(desk: DeskDep, request: Request) -> PageSession:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginRequired
    with desk.engine.connect() as conn:
        found = session_user(conn, token, "session", now())
    if found is None or found[1] is None:
        raise LoginRequired
    return PageSession(found[0], found[1], token)


PageDep = Annotated[PageSession, Depends(page_session)]
