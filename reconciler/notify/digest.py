"""Plan the digests: one per employer with something new since it was last told.

"New" = a finding about the employer that no digest has carried yet: an engagement the
reconciler registered on its behalf (a ``missing_registration`` resolved as
``auto_registered``), or an unresolved finding it must correct. Planning writes, in one
transaction, a ``notifications`` row per channel the employer can be reached on and a
``notified_findings`` row per finding — so a finding is carried by exactly one digest, ever.
An employer the employers feed cannot reach (no email, no webhook, channel switched off)
gets nothing, and its findings wait until it can be reached.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select

from reconciler.actions import UNRESOLVED
from reconciler.config import NotifySettings
from reconciler.notify.tables import notifications, notified_findings
from reconciler.storage import findings, source_records

# the contract's details worth showing an employer, by sign
SHOWN_DETAILS = ("declared", "evidence_wage", "employment_started", "registered_on",
                 "end_date")


@dataclass(frozen=True)
class Employer:
    employer_id: str
    name: str
    email: str | None
    webhook_url: str | None
    language: str


def mask_identifier(value: str | None) -> str | None:
    """The employer knows its workers; the last four digits are enough to recognise one."""
    if not value:
        return None
    return "•" * max(0, len(value) - 4) + value[-4:]


def _worker(row: Mapping[Any, Any]) -> dict[str, Any]:
    worker = row["worker"] or {}
    ident = next((worker.get(k) for k in ("national_id", "residence_id", "border_number",
                                           "passport_number") if worker.get(k)), None)
    return {"name": worker.get("name_en"), "identifier": mask_identifier(ident)}


def current_employers(conn: Connection, default_language: str) -> dict[str, Employer]:
    """The employers feed's current rows; an extra ``language`` column (``en``/``ar``)
    picks the digest language, else the configured default."""
    table = source_records
    rows = conn.execute(select(table.c.employer_id, table.c.name, table.c.email,
                               table.c.webhook_url, table.c.extra)
                        .where(table.c.feed == "employers", table.c.is_current)).mappings()
    out: dict[str, Employer] = {}
    for row in rows:
        extra = row["extra"] or {}
        language = str(extra.get("language") or default_language).lower()
        out[str(row["employer_id"])] = Employer(
            employer_id=str(row["employer_id"]), name=str(row["name"] or row["employer_id"]),
            email=row["email"] or None, webhook_url=row["webhook_url"] or None,
            language=language if language in ("en", "ar") else default_language)
    return out


def _item(row: Mapping[Any, Any]) -> dict[str, Any]:
    details = row["details"] or {}
    return {
        "finding_id": row["finding_id"], "reference": str(row["finding_id"])[:8].upper(),
        "rule": row["rule"], "severity": row["severity"], "reasoning": row["reasoning"],
        "worker": _worker(row),
        "details": {k: details[k] for k in SHOWN_DETAILS if details.get(k) is not None},
    }


def plan_digests(conn: Connection, settings: NotifySettings, as_of: date, now: datetime,
                 channels: set[str]) -> list[str]:
    """Record the digests of everything new; return their digest ids. Runs inside the
    caller's transaction."""
    if not channels:
        return []
    employers = current_employers(conn, settings.default_language)
    told = select(notified_findings.c.finding_id)
    rows = conn.execute(
        select(findings).where(findings.c.employer_id.is_not(None),
                               findings.c.finding_id.not_in(told))
        .order_by(findings.c.employer_id, findings.c.rule, findings.c.finding_id)).mappings()
    news: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(
        lambda: {"registered": [], "corrections": []})
    for row in rows:
        if row["status"] == "resolved" and row["resolution"] == "auto_registered":
            news[str(row["employer_id"])]["registered"].append(_item(row))
        elif row["status"] in UNRESOLVED:
            news[str(row["employer_id"])]["corrections"].append(_item(row))
    respond_by = as_of + timedelta(days=settings.correction_days)
    planned: list[str] = []
    for employer_id, items in sorted(news.items()):
        employer = employers.get(employer_id)
        if employer is None:
            continue
        targets = [(c, r) for c, r in (("email", employer.email),
                                       ("webhook", employer.webhook_url))
                   if c in channels and r]
        if not targets:
            continue
        digest_id = str(uuid.uuid4())
        digest = {
            "digest_id": digest_id, "employer_id": employer_id,
            "employer_name": employer.name, "as_of": as_of.isoformat(),
            "respond_by": respond_by.isoformat(), **items,
            "dispute": {"url": settings.dispute_url, "email": settings.dispute_email,
                        "by": respond_by.isoformat()},
        }
        conn.execute(insert(notifications), [
            {"notification_id": str(uuid.uuid4()), "digest_id": digest_id,
             "employer_id": employer_id, "channel": channel, "recipient": recipient,
             "language": employer.language, "digest": digest, "status": "pending",
             "attempts": 0, "next_attempt_at": now, "last_error": None, "created_at": now,
             "sent_at": None} for channel, recipient in targets])
        conn.execute(insert(notified_findings), [
            {"finding_id": item["finding_id"], "digest_id": digest_id,
             "employer_id": employer_id, "kind": kind, "notified_at": now}
            for kind, key in (("registered", "registered"), ("correction", "corrections"))
            for item in items[key]])
        planned.append(digest_id)
    return planned
