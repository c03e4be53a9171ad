"""Act on the hits of a run: findings lifecycle, auto-registration, audit and outbox.

Everything here runs in the caller's one unit of work: a finding, its history, its audit
entry, its events and any registration commit together or not at all. Running again on the
same data finds every fingerprint already in the state it would put it in, and writes
nothing.

Lifecycle: ``open → in_review → confirmed | dismissed → resolved``. A finding whose condition
no longer holds is *resolved* (never deleted); one that holds again is reopened. A dismissed
finding stays dismissed unless its evidence changes.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, select, update

from reconciler.audit import AuditTrail
from reconciler.identity.resolve import Person
from reconciler.registry import NewContributor, RegistrationRequest, RegistryGateway
from reconciler.rules.catalogue import Catalogue
from reconciler.rules.checks import Hit
from reconciler.storage import bulk_insert, finding_history, findings, outbox

ACTOR = "reconciler"
EVENT_PREFIX = "org.reconciler"
UNRESOLVED = ("open", "in_review", "confirmed")
ID_KINDS = ("national_id", "residence_id", "border_number", "passport_number")


@dataclass
class PersonView:
    """What the findings say about a person: identifiers, name, confidence, doubts."""

    person: Person
    worker: dict[str, Any]
    contributor_ids: list[str]
    identity: dict[str, Any]  # fields for a new contributor


@dataclass
class ActStats:
    opened: int = 0
    updated: int = 0
    resolved: int = 0
    reopened: int = 0
    auto_registered: int = 0
    unchanged: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)


def fingerprint(rule: str, person_id: str, employer_id: str | None) -> str:
    return hashlib.sha256(f"{rule}|{person_id}|{employer_id or ''}".encode()).hexdigest()


def _hash(content: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str)
                          .encode()).hexdigest()


def person_views(records: pd.DataFrame, persons: Mapping[str, Person],
                 wanted: set[str]) -> dict[str, PersonView]:
    """Summarise each wanted person from its records: partner records first (newest
    identifiers), registry last; only valid identifiers are reported as the person's."""
    priority = {"permits": 0, "contracts": 1, "payroll": 2, "contributors": 3}
    sub = records[records["person_id"].isin(wanted)].copy()
    sub["_prio"] = sub["feed"].map(priority).fillna(9)
    sub = sub.sort_values(["person_id", "_prio", "updated_at"], ascending=[True, True, False],
                          na_position="last")
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in sub.drop(columns="_prio").to_dict("records"):
        grouped[str(record["person_id"])].append(record)
    views: dict[str, PersonView] = {}
    for pid, rows in grouped.items():
        worker: dict[str, Any] = {"contributor_id": None, "contributor_ids": []}
        for kind in ID_KINDS:
            worker[kind] = next((r[kind] for r in rows if _valid(r, kind)), None)
        contributor_rows = [r for r in rows if r["feed"] == "contributors"]
        cids = sorted(str(r["key"]) for r in contributor_rows)
        worker["contributor_ids"] = cids
        worker["contributor_id"] = cids[0] if cids else None
        name_rows = contributor_rows or rows
        worker["name_en"] = next((r["name_en"] for r in name_rows if r.get("name_en")), None)
        identity = {
            kind: worker[kind] for kind in ID_KINDS
        } | {
            col: next((r[col] for r in rows if _present(r.get(col))), None)
            for col in ("nationality", "name_en", "name_ar", "date_of_birth", "sex")
        }
        views[str(pid)] = PersonView(persons[str(pid)], worker, cids, identity)
    return views


def _present(value: object) -> bool:
    return value is not None and value == value and value != ""


def _valid(row: Mapping[str, Any], kind: str) -> bool:
    value = row.get(kind)
    return _present(value) and kind not in str(row.get("invalid_ids") or "")


class Actor:
    """Turns a run's hits into decisions; one instance per unit of work."""

    def __init__(self, conn: Connection, catalogue: Catalogue, registry: RegistryGateway,
                 auto_threshold: float, as_of: date, now: datetime) -> None:
        self.conn = conn
        self.catalogue = catalogue
        self.registry = registry
        self.auto_threshold = auto_threshold
        self.as_of = as_of
        self.now = now
        self.audit = AuditTrail(conn)
        self.events: list[dict[str, Any]] = []
        self._new: list[dict[str, Any]] = []
        self._histories: list[dict[str, Any]] = []
        self.stats = ActStats()

    # -- policy ---------------------------------------------------------------------------

    def auto_registration(self, hit: Hit, view: PersonView) -> RegistrationRequest | None:
        """The contract's policy: confident identity, two independent current sources."""
        if hit.rule != "missing_registration" or hit.employer_id is None:
            return None
        person = view.person
        if person.confidence < self.auto_threshold or person.doubts:
            return None
        sources = hit.details.get("current_sources", [])
        if len(sources) < self.catalogue.auto_registration.min_sources:
            return None
        if len(view.contributor_ids) > 1:
            return None  # a duplicate group: which record to register on is an officer's call
        wage = hit.details.get("evidence_wage")
        started = date.fromisoformat(hit.details["employment_started"])
        request = RegistrationRequest(
            employer_id=hit.employer_id, start_date=started, registered_on=self.as_of,
            contributory_wage=float(wage or 0), occupation_code=None)
        if view.contributor_ids:
            return replace(request, contributor_id=view.contributor_ids[0])
        ident = view.identity
        strong = any(ident.get(k) for k in ("national_id", "residence_id", "border_number"))
        if not (strong and ident.get("name_en") and ident.get("date_of_birth")
                and ident.get("nationality") and wage):
            return None
        return replace(request, new_contributor=NewContributor(
            **{k: ident.get(k) for k in NewContributor.__dataclass_fields__}))

    # -- lifecycle ------------------------------------------------------------------------

    def act(self, hits: list[Hit], views: Mapping[str, PersonView]) -> ActStats:
        existing = {r["fingerprint"]: dict(r) for r in
                    self.conn.execute(select(findings)).mappings()}
        seen: set[str] = set()
        for hit in sorted(hits, key=lambda h: (h.rule, h.person_id, h.employer_id or "")):
            fp = fingerprint(hit.rule, hit.person_id, hit.employer_id)
            seen.add(fp)
            view = views[hit.person_id]
            self.stats.by_rule[hit.rule] = self.stats.by_rule.get(hit.rule, 0) + 1
            if fp in existing:
                self._revisit(existing[fp], hit, view)
            else:
                self._open(fp, hit, view)
        for fp, row in existing.items():
            if fp not in seen and row["status"] in UNRESOLVED:
                self._resolve(row)
        # new findings first: history rows refer to them
        for table, rows in ((findings, self._new), (finding_history, self._histories),
                            (outbox, self.events)):
            bulk_insert(self.conn, table, rows)
        self.audit.flush()
        return self.stats

    def _content(self, hit: Hit, view: PersonView, action: str) -> dict[str, Any]:
        sign = self.catalogue.signs[hit.rule]
        return {
            "rule_version": sign.version, "severity": sign.severity, "action": action,
            "confidence": round(view.person.confidence, 6), "worker": view.worker,
            "evidence": [{"feed": f, "key": k} for f, k in hit.evidence],
            "details": {**hit.details, **self._identity_details(view)},
            "reasoning": sign.describe(),
        }

    @staticmethod
    def _identity_details(view: PersonView) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, links in (("identity_links", view.person.links),
                           ("identity_doubts", view.person.doubts)):
            if links:
                out[key] = [{"records": [link.ref_a, link.ref_b],
                             "probability": round(link.probability, 6),
                             "weights": dict(link.weights), "explanation": link.explain()}
                            for link in links[:10]]
        return out

    def _open(self, fp: str, hit: Hit, view: PersonView) -> None:
        sign = self.catalogue.signs[hit.rule]
        request = self.auto_registration(hit, view) if sign.action == "review" else None
        action = "auto_register" if request else sign.action
        content = self._content(hit, view, action)
        finding_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"reconciler:finding:{fp}"))
        row = {
            "finding_id": finding_id, "fingerprint": fp, "rule": hit.rule,
            "person_id": hit.person_id, "employer_id": hit.employer_id, "status": "open",
            "content_hash": _hash(content), "first_seen": self.now, "last_seen": self.now,
            "last_seen_as_of": self.as_of, "resolved_at": None, "resolution": None, **content,
        }
        self._new.append(row)
        self._history(finding_id, None, "open", "signs of violation observed")
        self.audit.append(self.now, ACTOR, "finding.open", finding_id,
                          {"rule": hit.rule, "employer_id": hit.employer_id,
                           "person_id": hit.person_id, "action": action})
        self._event("finding.opened", hit.person_id, self._summary(row))
        self.stats.opened += 1
        if request is not None:
            self._register(row, request)

    def _register(self, row: dict[str, Any], request: RegistrationRequest) -> None:
        finding_id = row["finding_id"]
        request = replace(request, finding_id=finding_id)
        done = self.registry.register(self.conn, request, self.now)
        row.update(status="resolved", resolution="auto_registered", resolved_at=self.now)
        worker = row["worker"]
        if not worker.get("contributor_id"):  # the worker is now a known contributor
            row["worker"] = {**worker, "contributor_id": done.contributor_id,
                             "contributor_ids": [done.contributor_id]}
        self._history(finding_id, "open", "resolved",
                      f"auto-registered: engagement {done.engagement_id}")
        details = {"finding_id": finding_id, "employer_id": request.employer_id,
                   "contributor_id": done.contributor_id, "engagement_id": done.engagement_id,
                   "created_contributor": done.created_contributor,
                   "start_date": request.start_date.isoformat(),
                   "contributory_wage": request.contributory_wage}
        self.audit.append(self.now, ACTOR, "registration.auto_register", finding_id, details)
        self._event("registration.auto_registered", row["person_id"], details)
        self.stats.auto_registered += 1

    def _revisit(self, row: dict[str, Any], hit: Hit, view: PersonView) -> None:
        status = row["status"]
        action = row["action"] if row["action"] == "auto_register" else \
            self.catalogue.signs[hit.rule].action
        content = self._content(hit, view, action)
        changed = _hash(content) != row["content_hash"]
        values: dict[str, Any] = {}
        if row["last_seen_as_of"] is None or self.as_of > _as_date(row["last_seen_as_of"]):
            values.update(last_seen=self.now, last_seen_as_of=self.as_of)
        reopen = (status == "resolved" and row["resolution"] != "auto_registered") or (
            status == "dismissed" and changed)
        if reopen:
            values.update(status="open", resolved_at=None, resolution=None)
        if changed:
            values.update(content_hash=_hash(content), **content)
        if values:
            self.conn.execute(update(findings)
                              .where(findings.c.finding_id == row["finding_id"]).values(**values))
        if reopen:
            self._history(row["finding_id"], status, "open", "condition holds again")
            self.audit.append(self.now, ACTOR, "finding.reopen", row["finding_id"],
                              {"rule": hit.rule, "from": status})
            self._event("finding.updated", row["person_id"],
                        self._summary({**row, **values}) | {"change": "reopened"})
            self.stats.reopened += 1
        elif changed and status in UNRESOLVED:
            self.audit.append(self.now, ACTOR, "finding.update", row["finding_id"],
                              {"rule": hit.rule})
            self._event("finding.updated", row["person_id"],
                        self._summary({**row, **values}) | {"change": "evidence"})
            self.stats.updated += 1
        else:
            self.stats.unchanged += 1

    def _resolve(self, row: dict[str, Any]) -> None:
        self.conn.execute(update(findings).where(findings.c.finding_id == row["finding_id"])
                          .values(status="resolved", resolution="condition_cleared",
                                  resolved_at=self.now))
        self._history(row["finding_id"], row["status"], "resolved", "condition no longer holds")
        self.audit.append(self.now, ACTOR, "finding.resolve", row["finding_id"],
                          {"rule": row["rule"], "from": row["status"]})
        self._event("finding.resolved", row["person_id"],
                    self._summary({**row, "status": "resolved"}))
        self.stats.resolved += 1

    # -- helpers --------------------------------------------------------------------------

    def _history(self, finding_id: str, before: str | None, after: str, note: str) -> None:
        self._histories.append({"finding_id": finding_id, "at": self.now, "actor": ACTOR,
                                "from_status": before, "to_status": after, "note": note})

    @staticmethod
    def _summary(row: Mapping[str, Any]) -> dict[str, Any]:
        """What a consumer needs; no names or identifiers (they look those up by finding)."""
        return {k: row.get(k) for k in ("finding_id", "rule", "severity", "status", "action",
                                        "employer_id", "person_id", "confidence")}

    def _event(self, kind: str, subject: str, payload: dict[str, Any]) -> None:
        self.events.append({
            "event_id": str(uuid.uuid4()), "type": f"{EVENT_PREFIX}.{kind}",
            "subject": subject, "time": self.now, "payload": payload, "attempts": 0,
        })


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
