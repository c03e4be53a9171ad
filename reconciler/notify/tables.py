"""The notifier's tables, on the one schema's ``metadata`` (migration ``0002``).

* ``notifications`` — one row per digest and channel (email, webhook): what was sent, to
  whom, and its delivery state: ``pending`` → ``sent`` | ``dead`` (dead-lettered after
  ``notify.max_attempts`` failures, or at once on a permanent refusal).
* ``notified_findings`` — each finding an employer was told about, once; its primary key is
  what makes "a finding already notified is never notified again" hold.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, Integer, String, Table, Text

from reconciler.storage import TZ, metadata

notifications = Table(
    "notifications", metadata,
    Column("notification_id", String(36), primary_key=True),
    Column("digest_id", String(36), nullable=False),
    Column("employer_id", String(20), nullable=False),
    Column("channel", String(16), nullable=False),  # email | webhook
    Column("recipient", Text, nullable=False),
    Column("language", String(2), nullable=False),
    Column("digest", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending | sent | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", TZ, nullable=False),
    Column("last_error", Text),
    Column("created_at", TZ, nullable=False),
    Column("sent_at", TZ),
    Index("ix_notifications_status_next_attempt_at", "status", "next_attempt_at"),
)

notified_findings = Table(
    "notified_findings", metadata,
    Column("finding_id", ForeignKey("findings.finding_id"), primary_key=True),
    Column("digest_id", String(36), nullable=False),
    Column("employer_id", String(20), nullable=False),
    Column("kind", String(16), nullable=False),  # registered | correction
    Column("notified_at", TZ, nullable=False),
)

decision_notices = Table(
    # What the desk decided about a finding that names an employer, waiting for the next
    # digest: written in the decision's own transaction, carried by exactly one digest
    # (``digest_id``) or ``skipped`` (a dismissal of something the employer was never told).
    "decision_notices", metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
           autoincrement=True),
    Column("finding_id", ForeignKey("findings.finding_id"), nullable=False),
    Column("employer_id", String(20), nullable=False),
    Column("decision", String(16), nullable=False),  # confirm | dismiss | reverse
    Column("outcome", Text, nullable=False),  # what was done, in plain words
    Column("decided_at", TZ, nullable=False),
    Column("status", String(16), nullable=False),  # pending | planned | skipped
    Column("digest_id", String(36)),
    Index("ix_decision_notices_status", "status"),
)
