"""Liveness and readiness, as pure functions over what they are given.

* **Alive** (``/healthz``): the process answers. It deliberately does not touch the
  database — a database outage must make replicas *not ready*, not get them restarted.
* **Ready** (``/readyz``): the database answers ``SELECT 1``, its schema is at the code's
  Alembic head, and — in a process that runs the scheduler — the scheduler is either the
  leader or a standby.

The scheduler state is a callable returning ``"leader"``, ``"standby"`` or ``"none"``:

* ``leader`` — this replica holds the scheduling lease (runs pulls and reconciles);
* ``standby`` — the scheduler runs but another replica holds the lease: ready, it serves
  the desk and ``/metrics`` and takes over when the lease expires;
* ``none`` — the scheduler has not started, has stopped, or lost the lease without
  standing by: not ready.

The lease in the ``leases`` table does not exist yet; until it does, the daemon passes a
callable answering ``"leader"`` while its APScheduler is running and ``"none"`` otherwise.
A process with no scheduler at all (the web desk on its own) passes ``None`` and the check
is skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from reconciler.migrate import current_revision, head_revision

SchedulerRole = Literal["leader", "standby", "none"]
SchedulerState = Callable[[], SchedulerRole]
SCHEDULER_ROLES: tuple[SchedulerRole, ...] = ("leader", "standby", "none")


class Health(NamedTuple):
    ok: bool
    reasons: list[str]


def liveness() -> Health:
    """The process is alive if it can answer at all."""
    return Health(True, [])


def database_reasons(engine: Engine) -> list[str]:
    """Why the database is not usable — empty when it answers and its schema is current."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return [f"database unreachable at {engine.url.render_as_string(hide_password=True)}: "
                f"{cause}"]
    try:
        current, head = current_revision(engine), head_revision(engine)
    except SQLAlchemyError as exc:
        return [f"database schema unreadable: {exc}"]
    if current != head:
        return [f"database schema at {current or 'no revision (empty database)'}, the code "
                f"needs {head}: run `reconciler db upgrade`"]
    return []


def scheduler_reasons(role: str | None) -> list[str]:
    """``None`` means the process runs no scheduler: nothing to check."""
    if role is None or role in ("leader", "standby"):
        return []
    if role == "none":
        return ["scheduler is neither leader nor standby (not started, stopped, or lost "
                "its lease)"]
    return [f"scheduler reported an unknown role {role!r} (expected leader, standby, none)"]


def readiness(engine: Engine, scheduler_state: SchedulerState | None = None) -> Health:
    """Ready to serve and work: database reachable and current, scheduler leased or standby."""
    reasons = database_reasons(engine)
    reasons += scheduler_reasons(scheduler_state() if scheduler_state is not None else None)
    return Health(not reasons, reasons)
