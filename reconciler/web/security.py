"""Accounts: argon2 password hashes, lock-out, server-side sessions and bearer tokens."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, delete, insert, select, update

from reconciler.errors import ReconcilerError
from reconciler.web.tables import users, web_sessions

Role = Literal["officer", "supervisor", "auditor", "admin"]
ROLES: tuple[Role, ...] = ("officer", "supervisor", "auditor", "admin")
_hasher = PasswordHasher()
# Verifying against this when the user does not exist costs the same as a real check, so
# the response time does not tell which usernames exist.
_DUMMY_HASH = _hasher.hash("not a password")


class AuthError(ReconcilerError):
    """Login refused: wrong credentials, locked or inactive account (one message for all)."""


class UserExists(ReconcilerError):
    pass


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: Role

    def can(self, permission: str) -> bool:
        return self.role in PERMISSIONS.get(permission, ())


PERMISSIONS: dict[str, tuple[Role, ...]] = {
    "findings.read": ("officer", "supervisor", "auditor"),
    "findings.decide": ("officer", "supervisor"),
    "findings.assign": ("supervisor",),
    "reversals.approve": ("supervisor",),
    "audit.read": ("auditor",),
    "users.manage": ("admin",),
}


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(conn: Connection, username: str, role: str, password: str,
             now: datetime | None = None) -> User:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if conn.execute(select(users.c.id).where(users.c.username == username)).first():
        raise UserExists(f"user {username!r} already exists")
    user_id = conn.execute(insert(users).values(
        username=username, role=role, password_hash=hash_password(password), active=True,
        failed_logins=0, created_at=now or datetime.now(UTC)).returning(users.c.id)
    ).scalar_one()
    return User(int(user_id), username, role)


def authenticate(conn: Connection, username: str, password: str, now: datetime,
                 max_attempts: int, lockout: timedelta) -> User:
    """The user, or :class:`AuthError`; ``max_attempts`` failures lock the account."""
    row = conn.execute(select(users).where(users.c.username == username)).mappings().first()
    if row is None:
        with contextlib.suppress(VerificationError):
            _hasher.verify(_DUMMY_HASH, password)
        raise AuthError("wrong username or password")
    locked_until = _aware(row["locked_until"])
    if locked_until is not None and locked_until > now:
        raise AuthError("account locked after repeated failures; try again later")
    try:
        _hasher.verify(row["password_hash"], password)
    except (VerificationError, InvalidHashError):
        failures = int(row["failed_logins"]) + 1
        values: dict[str, object] = {"failed_logins": failures}
        if failures >= max_attempts:
            values.update(failed_logins=0, locked_until=now + lockout)
        conn.execute(update(users).where(users.c.id == row["id"]).values(**values))
        raise AuthError("wrong username or password") from None
    if not row["active"]:
        raise AuthError("wrong username or password")
    if row["failed_logins"] or row["locked_until"]:
        conn.execute(update(users).where(users.c.id == row["id"])
                     .values(failed_logins=0, locked_until=None))
    return User(int(row["id"]), row["username"], row["role"])


def open_session(conn: Connection, user: User, kind: Literal["session", "bearer"],
                 now: datetime, lifetime: timedelta) -> tuple[str, str | None]:
    """(secret token, CSRF token for a cookie session)."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24) if kind == "session" else None
    conn.execute(delete(web_sessions).where(web_sessions.c.expires_at < now))
    conn.execute(insert(web_sessions).values(
        token_hash=_digest(token), user_id=user.id, kind=kind, csrf_token=csrf,
        created_at=now, expires_at=now + lifetime))
    return token, csrf


def session_user(conn: Connection, token: str, kind: Literal["session", "bearer"],
                 now: datetime) -> tuple[User, str | None] | None:
    row = conn.execute(
        select(users.c.id, users.c.username, users.c.role, users.c.active,
               web_sessions.c.csrf_token, web_sessions.c.expires_at)
        .join(users, users.c.id == web_sessions.c.user_id)
        .where(web_sessions.c.token_hash == _digest(token), web_sessions.c.kind == kind)
    ).mappings().first()
    if row is None or not row["active"]:
        return None
    expires = _aware(row["expires_at"])
    if expires is None or expires <= now:
        return None
    return User(int(row["id"]), row["username"], row["role"]), row["csrf_token"]


def close_session(conn: Connection, token: str) -> None:
    conn.execute(delete(web_sessions).where(web_sessions.c.token_hash == _digest(token)))


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
