"""Human decisions on findings — the desk's unit of work.

Each call runs in the caller's transaction and writes, together or not at all: the change
to the finding, its ``finding_history`` row, the audit entry (hash-chained through
:class:`~reconciler.audit.AuditTrail`) and the outbox event
``org.reconciler.finding.updated`` — as :mod:`reconciler.actions` does for the pipeline's
own decisions. Event payloads carry ids and codes, never names or identifiers.

Decisions: *confirm* — the registry is put right through the
:class:`~reconciler.registry.RegistryGateway` first, in the same transaction:

=========================  ===========================================================
``missing_registration``   register the engagement (a new contributor if need be)
``wage_underdeclared``     set the declared wage to the evidence wage
``stale_engagement``,      end the engagement today
``ghost_registration``
``wrong_employer``         end the engagements at the employers where the person no
                           longer works, register at the one where they do
``identity_mismatch``      amend the contributor's date of birth / nationality / sex
                           to the values the partners agree on
``duplicate_contributor``  merge the records into one (the one with the most active
                           engagements survives; ties: the lowest id)
``late_registration``      nothing to change in the registry: confirmed as it stands
=========================  ===========================================================

(an auto-registration is confirmed as it stands); *dismiss* (a reason is mandatory; the
pipeline reopens a dismissed finding only when its evidence changes); *escalate* (to a
supervisor). Reversing an auto-registration is four-eyes: one person requests it, a
supervisor who is not that person approves it.

A confirmation, a dismissal or a reversal of a finding that names an employer also writes
a ``decision_notices`` row: the notifier carries it in the employer's next digest.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import Connection, insert, select, update

from reconciler.actions import EVENT_PREFIX
from reconciler.audit import AuditTrail
from reconciler.errors import ReconcilerError
from reconciler.notify.tables import decision_notices
from reconciler.registry import (
    ContributorCorrection,
    ContributorMerge,
    EngagementCorrection,
    NewContributor,
    RegistrationRequest,
    RegistryGateway,
)
from reconciler.storage import finding_history, findings, outbox, source_records
from reconciler.web.tables import finding_reviews, reversal_requests

# confirming one of these corrects the registry through the gateway
CORRECTED_BY_CONFIRMATION = ("wage_underdeclared", "stale_engagement", "ghost_registration",
                             "wrong_employer", "identity_mismatch", "duplicate_contributor")

Decision = Literal["confirm", "dismiss", "escalate", "reverse"]
DECIDABLE = ("open", "in_review")


class ReviewError(ReconcilerError):
    """A decision that cannot be taken; ``status`` is the HTTP status that says why."""

    status = 409


class NotFoundError(ReviewError):
    status = 404


class ForbiddenError(ReviewError):
    status = 403


class InvalidError(ReviewError):
    status = 422


@dataclass(frozen=True)
class Outcome:
    finding_id: str
    decision: str
    status: str
    detail: str


class ReviewDesk:
    """One unit of work of one person at the desk."""

    def __init__(self, conn: Connection, registry: RegistryGateway, actor: str,
                 now: datetime) -> None:
        self.conn = conn
        self.registry = registry
        self.actor = actor
        self.now = now
        self.audit = AuditTrail(conn)

    # -- reading, audited ------------------------------------------------------------------

    def record(self, action: str, subject: str | None, details: Mapping[str, Any]) -> None:
        """Audit a view of personal data (a finding, a queue page, an export)."""
        self.audit.append(self.now, self.actor, action, subject, details)
        self.audit.flush()

    # -- decisions ------------------------------------------------------------------------

    def decide(self, finding_id: str, decision: str, reason: str | None) -> Outcome:
        row = self._finding(finding_id)
        reason = (reason or "").strip() or None
        if decision == "dismiss" and not reason:
            raise InvalidError("reason: a dismissal needs a reason")
        if decision == "reverse":
            return self._request_reversal(row, reason)
        auto = row["status"] == "resolved" and row["resolution"] == "auto_registered"
        if decision == "confirm" and auto:
            if self._review(finding_id).get("decision") == "confirm":
                raise ReviewError("this auto-registration is already confirmed")
            return self._apply(row, "confirm", "resolved", reason, "auto-registration confirmed")
        if row["status"] not in DECIDABLE:
            raise ReviewError(f"the finding is {row['status']}; only open or in-review "
                              "findings can be decided" + (
                                  " (an auto-registration can be confirmed or reversed)"
                                  if auto else ""))
        if decision == "confirm":
            note = "confirmed"
            if row["rule"] == "missing_registration":
                note = self._register(row)
            elif row["rule"] in CORRECTED_BY_CONFIRMATION:
                note = self._correct(row)
            return self._apply(row, "confirm", "confirmed", reason, note)
        if decision == "dismiss":
            return self._apply(row, "dismiss", "dismissed", reason, f"dismissed: {reason}")
        if decision == "escalate":
            return self._apply(row, "escalate", "in_review", reason,
                               "escalated to a supervisor", escalate=True)
        raise InvalidError("decision: expected one of confirm, dismiss, escalate, reverse")

    def take(self, finding_id: str, assignee: str | None = None) -> Outcome:
        """Assign a finding (to oneself, or — for supervisors — to someone else)."""
        row = self._finding(finding_id)
        who = assignee or self.actor
        status = row["status"]
        if status == "open":
            status = "in_review"
            self._set_status(row, status)
            self._history(finding_id, "open", status, f"assigned to {who}")
        self._upsert_review(finding_id, assignee=who, assigned_by=self.actor,
                            assigned_at=self.now)
        self.audit.append(self.now, self.actor, "finding.assign", finding_id,
                          {"assignee": who, "rule": row["rule"]})
        self._event(row, status, "assigned")
        self.audit.flush()
        return Outcome(finding_id, "assign", status, f"assigned to {who}")

    def approve_reversal(self, request_id: int, approve: bool) -> Outcome:
        req = self.conn.execute(select(reversal_requests)
                                .where(reversal_requests.c.id == request_id)).mappings().first()
        if req is None:
            raise NotFoundError(f"no reversal request {request_id}")
        if req["status"] != "pending":
            raise ReviewError(f"reversal request {request_id} is already {req['status']}")
        if req["requested_by"] == self.actor:
            raise ForbiddenError("four-eyes: a reversal must be approved by someone other "
                                 "than the person who requested it")
        row = self._finding(req["finding_id"])
        self.conn.execute(update(reversal_requests).where(reversal_requests.c.id == request_id)
                          .values(status="approved" if approve else "rejected",
                                  decided_by=self.actor, decided_at=self.now))
        if not approve:
            self.audit.append(self.now, self.actor, "reversal.reject", row["finding_id"],
                              {"request_id": request_id})
            self.audit.flush()
            return Outcome(row["finding_id"], "reject_reversal", row["status"], "rejected")
        reversed_ids = self.registry.reverse(self.conn, row["finding_id"], self.now,
                                             req["reason"])
        self.conn.execute(update(findings).where(findings.c.finding_id == row["finding_id"])
                          .values(status="dismissed", resolution="registration_reversed",
                                  resolved_at=self.now))
        self._history(row["finding_id"], row["status"], "dismissed",
                      f"auto-registration reversed (requested by {req['requested_by']}, "
                      f"approved by {self.actor}): {req['reason']}")
        self._upsert_review(row["finding_id"], decision="reverse", decided_by=self.actor,
                            decided_at=self.now, reason=req["reason"])
        details = {"request_id": request_id, "requested_by": req["requested_by"],
                   "reversed": reversed_ids, "reason": req["reason"]}
        self.audit.append(self.now, self.actor, "registration.reverse", row["finding_id"],
                          details)
        self._outbox("registration.reversed", row["person_id"],
                     {"finding_id": row["finding_id"], "employer_id": row["employer_id"],
                      "reversed": reversed_ids})
        self._event(row, "dismissed", "registration_reversed")
        self._notice(row, "reverse", "the registration made on your behalf was withdrawn: "
                     + req["reason"])
        self.audit.flush()
        return Outcome(row["finding_id"], "approve_reversal", "dismissed",
                       f"reversed {', '.join(reversed_ids) or 'nothing'}")

    # -- internals ------------------------------------------------------------------------

    def _finding(self, finding_id: str) -> dict[str, Any]:
        query = select(findings).where(findings.c.finding_id == finding_id)
        if self.conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = self.conn.execute(query).mappings().first()
        if row is None:
            raise NotFoundError(f"no finding {finding_id}")
        return dict(row)

    def _review(self, finding_id: str) -> dict[str, Any]:
        row = self.conn.execute(select(finding_reviews)
                                .where(finding_reviews.c.finding_id == finding_id)
                                ).mappings().first()
        return dict(row) if row else {}

    def _request_reversal(self, row: Mapping[str, Any], reason: str | None) -> Outcome:
        if not (row["status"] == "resolved" and row["resolution"] == "auto_registered"):
            raise ReviewError("only an auto-registration can be reversed")
        if not reason:
            raise InvalidError("reason: a reversal request needs a reason")
        pending = self.conn.execute(select(reversal_requests.c.id).where(
            reversal_requests.c.finding_id == row["finding_id"],
            reversal_requests.c.status == "pending")).first()
        if pending:
            raise ReviewError(f"a reversal is already waiting for approval (request "
                              f"{pending[0]})")
        request_id = self.conn.execute(insert(reversal_requests).values(
            finding_id=row["finding_id"], requested_by=self.actor, requested_at=self.now,
            reason=reason, status="pending").returning(reversal_requests.c.id)).scalar_one()
        self.audit.append(self.now, self.actor, "reversal.request", row["finding_id"],
                          {"request_id": int(request_id), "reason": reason})
        self.audit.flush()
        return Outcome(row["finding_id"], "reverse", row["status"],
                       f"reversal request {request_id} waits for a supervisor's approval")

    def _apply(self, row: Mapping[str, Any], decision: str, status: str, reason: str | None,
               note: str, escalate: bool = False) -> Outcome:
        finding_id = row["finding_id"]
        if status != row["status"]:
            self._set_status(row, status)
        self._history(finding_id, row["status"], status, note)
        values: dict[str, Any] = {"decision": decision, "decided_by": self.actor,
                                  "decided_at": self.now, "reason": reason}
        if escalate:
            values.update(escalated=True, assignee=None)
        self._upsert_review(finding_id, **values)
        self.audit.append(self.now, self.actor, "finding.decision", finding_id,
                          {"decision": decision, "reason": reason, "rule": row["rule"],
                           "from": row["status"], "to": status, "note": note})
        self._event(row, status, decision)
        if decision in ("confirm", "dismiss") and row["status"] in DECIDABLE:
            self._notice(row, decision, note)
        self.audit.flush()
        return Outcome(finding_id, decision, status, note)

    def _notice(self, row: Mapping[str, Any], decision: str, outcome: str,
                employer_id: str | None = None) -> None:
        """Tell the employer at its next digest (nothing to tell without an employer)."""
        employer_id = employer_id or row["employer_id"]
        if employer_id:
            self.conn.execute(insert(decision_notices).values(
                finding_id=row["finding_id"], employer_id=employer_id,
                decision=decision, outcome=outcome, decided_at=self.now, status="pending"))

    def _set_status(self, row: Mapping[str, Any], status: str) -> None:
        done = self.conn.execute(update(findings).where(
            findings.c.finding_id == row["finding_id"], findings.c.status == row["status"])
            .values(status=status))
        if done.rowcount != 1:
            raise ReviewError("the finding changed meanwhile; reload and decide again")

    def _register(self, row: Mapping[str, Any]) -> str:
        details = row["details"] or {}
        worker = row["worker"] or {}
        started, wage = details.get("employment_started"), details.get("evidence_wage")
        if not started or wage is None or not row["employer_id"]:
            raise ReviewError("cannot register: the finding has no employment start, "
                              "evidence wage or employer")
        request = RegistrationRequest(
            employer_id=row["employer_id"], start_date=date.fromisoformat(str(started)),
            registered_on=self.now.date(), contributory_wage=float(wage),
            occupation_code=None, contributor_id=worker.get("contributor_id"),
            finding_id=row["finding_id"],
            new_contributor=None if worker.get("contributor_id") else self._identity(row))
        done = self.registry.register(self.conn, request, self.now)
        details_out = {"finding_id": row["finding_id"], "employer_id": row["employer_id"],
                       "contributor_id": done.contributor_id,
                       "engagement_id": done.engagement_id,
                       "created_contributor": done.created_contributor}
        self.audit.append(self.now, self.actor, "registration.register", row["finding_id"],
                          details_out)
        self._outbox("registration.registered", row["person_id"], details_out)
        return f"confirmed and registered: engagement {done.engagement_id}"

    def _correct(self, row: Mapping[str, Any]) -> str:
        """Confirming an under-declared wage sets the declared wage to the evidence wage;
        confirming a stale or ghost engagement ends it today. Through the gateway, then
        audited and announced like a registration."""
        if row["rule"] == "wrong_employer":
            return self._move(row)
        if row["rule"] == "identity_mismatch":
            return self._amend(row)
        if row["rule"] == "duplicate_contributor":
            return self._merge(row)
        details = row["details"] or {}
        engagement = details.get("engagement_id")
        if not engagement:
            raise ReviewError("cannot correct: the finding names no engagement")
        if row["rule"] == "wage_underdeclared":
            change = EngagementCorrection(str(engagement), row["finding_id"],
                                          contributory_wage=float(details["evidence_wage"]))
            what = f"declared wage set to {change.contributory_wage:,.2f}"
        else:
            change = EngagementCorrection(str(engagement), row["finding_id"],
                                          end_date=self.now.date())
            what = f"engagement ended on {self.now.date().isoformat()}"
        correction_id = self.registry.correct(self.conn, change, self.now)
        out = {"finding_id": row["finding_id"], "employer_id": row["employer_id"],
               "engagement_id": str(engagement), "correction_id": correction_id}
        self.audit.append(self.now, self.actor, "registration.correct", row["finding_id"],
                          {**out, "change": what})
        self._outbox("registration.corrected", row["person_id"], out)
        return f"confirmed and corrected: {what} ({correction_id})"

    def _end_engagement(self, row: Mapping[str, Any], engagement: str) -> str:
        change = EngagementCorrection(engagement, row["finding_id"], end_date=self.now.date())
        correction_id = self.registry.correct(self.conn, change, self.now)
        out = {"finding_id": row["finding_id"], "employer_id": row["employer_id"],
               "engagement_id": engagement, "correction_id": correction_id}
        self.audit.append(self.now, self.actor, "registration.correct", row["finding_id"],
                          {**out, "change": f"engagement ended on {self.now.date()}"})
        self._outbox("registration.corrected", row["person_id"], out)
        return correction_id

    def _move(self, row: Mapping[str, Any]) -> str:
        """``wrong_employer``: registered at A, working at B. End the ACTIVE engagements at
        the employers where the person no longer works, then register at B from the
        evidence (unless an ACTIVE engagement at B exists already)."""
        details = row["details"] or {}
        contributors = _registry_ids(row)
        if len(contributors) != 1:
            raise ReviewError("cannot move the registration: the person has "
                              f"{len(contributors)} contributor records — decide the "
                              "duplicate_contributor finding first")
        employers = [str(e) for e in details.get("registered_at") or []]
        engagements = self.registry.engagements_of(self.conn, contributors)
        active = engagements[engagements["status"] == "ACTIVE"]
        stale = active[active["employer_id"].isin(employers)].sort_values("engagement_id")
        ended = []
        for engagement, employer in zip(stale["engagement_id"], stale["employer_id"],
                                        strict=True):
            ended.append(f"{engagement} ended ({self._end_engagement(row, str(engagement))})")
            # the employer where the person no longer works hears of it too
            self._notice(row, "ended", f"engagement {engagement} ended", str(employer))
        if (active["employer_id"] == row["employer_id"]).any():
            return "confirmed: " + ("; ".join(ended) or "nothing to end") + \
                f"; already registered at {row['employer_id']}"
        started, wage = details.get("employment_started"), details.get("evidence_wage")
        if not started or wage is None:
            raise ReviewError("cannot register at the new employer: the finding has no "
                              "employment start or evidence wage — run a reconcile to "
                              "refresh it")
        registered = self._register({**row, "worker": {**(row["worker"] or {}),
                                                        "contributor_id": contributors[0]}})
        return "; ".join([*ended, registered])

    def _amend(self, row: Mapping[str, Any]) -> str:
        """``identity_mismatch``: each differing field takes the partners' value."""
        details = row["details"] or {}
        done = []
        for item in [details, *(details.get("more") or [])]:
            changes = {col: str(diff["partners"])
                       for col, diff in (item.get("differences") or {}).items()}
            if not item.get("contributor_id") or not changes:
                continue
            amendment = ContributorCorrection(str(item["contributor_id"]), row["finding_id"],
                                              changes)
            amendment_id = self.registry.correct_contributor(self.conn, amendment, self.now)
            out = {"finding_id": row["finding_id"], "employer_id": row["employer_id"],
                   "contributor_id": amendment.contributor_id, "amendment_id": amendment_id,
                   "fields": sorted(changes)}
            self.audit.append(self.now, self.actor, "registration.amend", row["finding_id"],
                              {**out, "changes": changes})
            self._outbox("registration.corrected", row["person_id"], out)
            what = ", ".join(f"{c.replace('_', ' ')} set to {v}" for c, v in changes.items())
            done.append(f"{amendment.contributor_id}: {what} ({amendment_id})")
        if not done:
            raise ReviewError("cannot amend: the finding names no difference")
        return "confirmed and amended: " + "; ".join(done)

    def _merge(self, row: Mapping[str, Any]) -> str:
        """``duplicate_contributor``: one record survives — the one with the most ACTIVE
        engagements (ties: the lowest id); the others are merged into it."""
        ids = sorted(str(i) for i in (row["details"] or {}).get("contributor_ids") or [])
        if len(ids) < 2:
            raise ReviewError("cannot merge: the finding names fewer than two records")
        engagements = self.registry.engagements_of(self.conn, ids)
        active = engagements[engagements["status"] == "ACTIVE"]["contributor_id"]
        counts = active.value_counts()
        survivor = min(ids, key=lambda i: (-int(counts.get(i, 0)), i))
        merge = ContributorMerge(survivor, tuple(i for i in ids if i != survivor),
                                 row["finding_id"])
        merge_id = self.registry.merge_contributors(self.conn, merge, self.now)
        out = {"finding_id": row["finding_id"], "employer_id": row["employer_id"],
               "contributor_id": survivor, "merged": list(merge.merged), "merge_id": merge_id}
        self.audit.append(self.now, self.actor, "registration.merge", row["finding_id"], out)
        self._outbox("registration.corrected", row["person_id"], out)
        return f"confirmed and merged: {', '.join(merge.merged)} into {survivor} ({merge_id})"

    def _identity(self, row: Mapping[str, Any]) -> NewContributor:
        """A new contributor from the finding's partner records (first value present)."""
        keys = [e["key"] for e in row["evidence"] if e["feed"] in
                ("contracts", "permits", "payroll")]
        records = self.conn.execute(select(source_records).where(
            source_records.c.record_key.in_(keys), source_records.c.is_current)
            .order_by(source_records.c.id)).mappings().all()
        worker = row["worker"] or {}

        def first(col: str) -> str | None:
            if worker.get(col):
                return str(worker[col])
            return next((str(r[col]) for r in records if r[col]), None)

        return NewContributor(**{f: first(f) for f in NewContributor.__dataclass_fields__})

    def _upsert_review(self, finding_id: str, **values: Any) -> None:
        if self._review(finding_id):
            self.conn.execute(update(finding_reviews)
                              .where(finding_reviews.c.finding_id == finding_id).values(**values))
        else:
            self.conn.execute(insert(finding_reviews).values(
                finding_id=finding_id, **{"escalated": False, **values}))

    def _history(self, finding_id: str, before: str | None, after: str, note: str) -> None:
        self.conn.execute(insert(finding_history).values(
            finding_id=finding_id, at=self.now, actor=self.actor, from_status=before,
            to_status=after, note=note))

    def _event(self, row: Mapping[str, Any], status: str, change: str) -> None:
        payload = {k: row.get(k) for k in ("finding_id", "rule", "severity", "action",
                                           "employer_id", "person_id", "confidence")}
        self._outbox("finding.updated", row["person_id"],
                     payload | {"status": status, "change": change, "by": self.actor})

    def _outbox(self, kind: str, subject: str, payload: dict[str, Any]) -> None:
        self.conn.execute(insert(outbox).values(
            event_id=str(uuid.uuid4()), type=f"{EVENT_PREFIX}.{kind}", subject=subject,
            time=self.now, payload=payload, attempts=0))


def _registry_ids(row: Mapping[str, Any]) -> list[str]:
    """The contributor records the finding's evidence names (its person's, in the registry)."""
    ids = [str(e["key"]) for e in row["evidence"] or [] if e["feed"] == "registry"]
    worker = row["worker"] or {}
    if not ids and worker.get("contributor_id"):
        ids = [str(worker["contributor_id"])]
    return sorted(set(ids))
