"""Plan the digests: one per employer with something new since it was last told.

"New" = a finding about the employer that no digest has carried yet: an engagement the
reconciler registered on its behalf (a ``missing_registration`` resolved as
``auto_registered``), or an unresolved finding it must correct; and what an officer decided
since (``decision_notices``: confirmed — with what was changed in the registry — dismissed,
or an auto-registration withdrawn). Planning writes, in one transaction, a
``notifications`` row per channel the employer can be reached on, a ``notified_findings``
row per finding and marks each decision notice ``planned`` — so a finding is carried by
exactly one digest, ever, and each decision by one more. A dismissal or a withdrawal of
something the employer was never told is not news: its notice is ``skipped``.
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

from sqlalchemy import Connection, insert, select, update

from reconciler.actions import UNRESOLVED
from reconciler.config import NotifySettings
from reconciler.notify.tables import decision_notices, notifications, notified_findings
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
        lambda: {"registered": [], "corrections": [], "decisions": []})
    notices = _decisions(conn)
    decided = {n["finding_id"] for n in notices.values()}
    for row in rows:
        if row["finding_id"] in decided:
            continue  # decided before it was ever told: the decision says it all
        if row["status"] == "resolved" and row["resolution"] == "auto_registered":
            news[str(row["employer_id"])]["registered"].append(_item(row))
        elif row["status"] in UNRESOLVED:
            news[str(row["employer_id"])]["corrections"].append(_item(row))
    for notice_id, item in notices.items():
        news[item["employer_id"]]["decisions"].append({**item, "notice_id": notice_id})
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
        told_now = [{"finding_id": item["finding_id"], "digest_id": digest_id,
                     "employer_id": employer_id, "kind": kind, "notified_at": now}
                    for kind, key in (("registered", "registered"),
                                      ("correction", "corrections"))
                    for item in items[key]]
        told_now += [{"finding_id": f, "digest_id": digest_id, "employer_id": employer_id,
                      "kind": "decision", "notified_at": now}
                     for f in sorted({i["finding_id"] for i in items["decisions"]
                                      if not i.pop("told")})]
        if told_now:
            conn.execute(insert(notified_findings), told_now)
        for item in items["decisions"]:
            conn.execute(update(decision_notices)
                         .where(decision_notices.c.id == item.pop("notice_id"))
                         .values(status="planned", digest_id=digest_id))
        planned.append(digest_id)
    return planned


def _decisions(conn: Connection) -> dict[int, dict[str, Any]]:
    """Pending decision notices as digest items (oldest first); a dismissal or withdrawal of
    a finding the employer was never told about is marked ``skipped`` here."""
    told = select(notified_findings.c.finding_id).where(
        notified_findings.c.finding_id == decision_notices.c.finding_id).exists()
    n, f = decision_notices.c, findings.c
    rows = conn.execute(
        select(n.id, n.employer_id, n.decision, n.outcome, n.decided_at, f.finding_id, f.rule,
               f.severity, f.reasoning, f.worker, f.details, told.label("told"))
        .join(findings, f.finding_id == n.finding_id)
        .where(decision_notices.c.status == "pending")
        .order_by(decision_notices.c.id)).mappings().all()
    out: dict[int, dict[str, Any]] = {}
    skipped = []
    for row in rows:
        if row["decision"] in ("dismiss", "reverse") and not row["told"]:
            skipped.append(row["id"])
            continue
        out[int(row["id"])] = {**_item(row), "employer_id": str(row["employer_id"]),
                               "decision": row["decision"], "outcome": row["outcome"],
                               "decided_on": row["decided_at"].date().isoformat(),
                               # an engagement ended at A for a finding at B: A's news, not
                               # a telling of B's finding
                               "told": bool(row["told"]) or row["decision"] == "ended"}
    if skipped:
        conn.execute(update(decision_notices).where(decision_notices.c.id.in_(skipped))
                     .values(status="skipped"))
    return out
