"""The desk's tables, on the one schema's ``metadata`` (migration ``0003``).

* ``users`` — desk accounts: a role, an argon2 hash, and the lock-out counters.
* ``web_sessions`` — server-side sessions (cookie, with their CSRF token) and API bearer
  tokens; only a SHA-256 of each secret is stored, so a leaked table opens nothing.
* ``finding_reviews`` — who holds a finding, whether it was escalated, and the last human
  decision (the pipeline owns ``findings``; the desk keeps its own state beside it).
* ``reversal_requests`` — four-eyes: a reversal of an auto-registration waits here until a
  second person, a supervisor, approves it.
* ``saved_filters`` — a user's named queue filters.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from reconciler.storage import TZ, Id, findings, metadata

users = Table(
    "users", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # officer | supervisor | auditor | admin
    Column("password_hash", Text, nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", TZ),
    Column("created_at", TZ, nullable=False),
)

web_sessions = Table(
    "web_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", ForeignKey("users.id"), nullable=False, index=True),
    Column("kind", String(8), nullable=False),  # session | bearer
    Column("csrf_token", String(64)),
    Column("created_at", TZ, nullable=False),
    Column("expires_at", TZ, nullable=False),
)

finding_reviews = Table(
    "finding_reviews", metadata,
    Column("finding_id", ForeignKey("findings.finding_id"), primary_key=True),
    Column("assignee", String(64)),
    Column("assigned_by", String(64)),
    Column("assigned_at", TZ),
    Column("escalated", Boolean, nullable=False, default=False),
    Column("decision", String(16)),
    Column("decided_by", String(64)),
    Column("decided_at", TZ),
    Column("reason", Text),
    Index("ix_finding_reviews_assignee", "assignee"),
)

reversal_requests = Table(
    "reversal_requests", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("finding_id", ForeignKey("findings.finding_id"), nullable=False, index=True),
    Column("requested_by", String(64), nullable=False),
    Column("requested_at", TZ, nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending | approved | rejected
    Column("decided_by", String(64)),
    Column("decided_at", TZ),
)

saved_filters = Table(
    "saved_filters", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", ForeignKey("users.id"), nullable=False),
    Column("name", String(80), nullable=False),
    Column("query", JSON, nullable=False),
    Column("created_at", TZ, nullable=False),
    UniqueConstraint("user_id", "name"),
)

# The queue filters and sorts on these at 100k findings (``benchmarks/desk.py``).
DESK_INDEXES = (
    Index("ix_findings_status_first_seen", findings.c.status, findings.c.first_seen),
    Index("ix_findings_employer_id", findings.c.employer_id),
)
