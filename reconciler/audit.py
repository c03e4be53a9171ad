"""Append-only, tamper-evident audit log: each entry's hash covers the previous hash.

Editing or deleting any entry breaks every hash after it; :func:`verify` finds the first
broken entry. Entries are written in the caller's unit of work, so a decision and its
audit entry commit together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, text

from reconciler.storage import audit_log, bulk_insert

GENESIS = "0" * 64
CHAIN_LOCK_KEY = 7_263_101  # pg_advisory_xact_lock key that serialises appends to the chain


def lock_chain(conn: Connection) -> None:
    """Serialise writers of the chain so two never extend the same tip (the pipeline's
    unit of work and a desk decision may commit at the same moment).

    PostgreSQL: a transaction-scoped advisory lock. SQLite: a write as the transaction's
    first statement takes the database's write lock before the tip is read.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK_KEY})
    else:
        conn.execute(text("UPDATE audit_log SET id = id WHERE 1 = 0"))


def _stamp(at: datetime) -> str:
    # SQLite hands back naive UTC datetimes, PostgreSQL aware ones: hash one canonical text.
    return (at.astimezone(UTC) if at.tzinfo else at).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _digest(prev: str, at: datetime | str, actor: str, action: str, subject: str | None,
            details: Mapping[str, Any]) -> str:
    """``at``: the time, or its :func:`_stamp` already made (a run stamps every entry
    with one time)."""
    stamp = at if isinstance(at, str) else _stamp(at)
    body = json.dumps([prev, stamp, actor, action, subject, details],
                      sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


_SCALARS = (str, int, float, bool, type(None))


def _plain(details: Mapping[str, Any]) -> bool:
    """A dict of text keys and JSON scalars: it survives a JSON round trip unchanged."""
    return type(details) is dict and all(
        type(k) is str and type(v) in _SCALARS for k, v in details.items())


class AuditTrail:
    """Appends to the chain inside one unit of work; reads the chain's tip once."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        lock_chain(conn)  # held until the unit of work commits
        tip = conn.execute(select(audit_log.c.hash).order_by(audit_log.c.id.desc())
                           .limit(1)).scalar()
        self.tip: str = tip or GENESIS
        self._rows: list[dict[str, Any]] = []
        self._stamps: tuple[datetime, str] | None = None  # the last time stamped

    def append(self, at: datetime, actor: str, action: str, subject: str | None,
               details: Mapping[str, Any]) -> None:
        # what the database will hand back: JSON's own types (a flat dict of them as is)
        clean = dict(details) if _plain(details) else \
            json.loads(json.dumps(details, default=str))
        if self._stamps is None or self._stamps[0] != at:  # equal instants: one stamp
            self._stamps = (at, _stamp(at))
        digest = _digest(self.tip, self._stamps[1], actor, action, subject, clean)
        self._rows.append({"at": at, "actor": actor, "action": action, "subject": subject,
                           "details": clean, "prev_hash": self.tip, "hash": digest})
        self.tip = digest
        if len(self._rows) >= 5000:
            self.flush()

    def flush(self) -> None:
        if self._rows:
            bulk_insert(self.conn, audit_log, self._rows)
            self._rows = []


def verify(conn: Connection) -> tuple[bool, int, str]:
    """(ok, entries checked, message naming the first broken entry)."""
    prev = GENESIS
    count = 0
    stamps: dict[datetime, str] = {}  # a run stamps all its entries with one time
    for row in conn.execute(select(audit_log).order_by(audit_log.c.id)).mappings():
        count += 1
        at = row["at"]
        stamp = stamps.get(at)
        if stamp is None:
            stamp = stamps[at] = _stamp(at)
            if len(stamps) > 10_000:
                stamps.clear()
        expected = _digest(prev, stamp, row["actor"], row["action"], row["subject"],
                           row["details"])
        if row["prev_hash"] != prev:
            return False, count, f"entry {row['id']}: previous hash does not match (deleted?)"
        if row["hash"] != expected:
            return False, count, f"entry {row['id']}: content does not match its hash (edited?)"
        prev = row["hash"]
    return True, count, f"{count} entries, chain intact"
