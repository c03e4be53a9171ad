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
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import Connection, bindparam, select, update

from reconciler.audit import AuditTrail
from reconciler.identity.resolve import Person
from reconciler.registry import (
    NewContributor,
    Registration,
    RegistrationRequest,
    RegistryGateway,
    read_frame,
)
from reconciler.rules.catalogue import Catalogue
from reconciler.rules.checks import Hit
from reconciler.storage import bulk_insert, finding_history, findings, outbox

ACTOR = "reconciler"
EVENT_PREFIX = "org.reconciler"
UNRESOLVED = ("open", "in_review", "confirmed")
ID_KINDS = ("national_id", "residence_id", "border_number", "passport_number")
IDENTITY_FIELDS = ("nationality", "name_en", "name_ar", "date_of_birth", "sex")


@dataclass
class PersonView:
    """What the findings say about a person: identifiers, name, confidence, doubts."""

    person: Person
    worker: dict[str, Any]
    contributor_ids: list[str]
    identity: dict[str, Any]  # fields for a new contributor
    # registry records of *other* persons carrying one of this person's identifiers (kind,
    # value, contributor id): the resolver kept them apart, but a registration here could
    # duplicate somebody already registered — never automatic (see registry_claims)
    claimed_by: list[tuple[str, str, str]] = field(default_factory=list)


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
    identifiers), registry last; only valid identifiers (present, not listed in the
    record's ``invalid_ids``) are reported as the person's.

    Column-wise: the wanted persons' records sorted once, then for each field the first
    record (in that order) that has it — no dictionary per record."""
    priority = {"permits": 0, "contracts": 1, "payroll": 2, "contributors": 3}
    fields = ["person_id", "feed", "key", "updated_at", "invalid_ids", *ID_KINDS,
              *IDENTITY_FIELDS]
    rows = np.flatnonzero(records["person_id"].isin(wanted).to_numpy())
    sub = pd.DataFrame({c: column_values(records[c])[rows] for c in dict.fromkeys(fields)
                        if c in records}, copy=False)  # column by column: no block copies
    sub["_prio"] = sub["feed"].map(priority).fillna(9)
    sub = sub.sort_values(["person_id", "_prio", "updated_at"], ascending=[True, True, False],
                          na_position="last")
    codes, pids = pd.factorize(sub["person_id"].to_numpy(dtype=object))
    n = len(pids)

    def column(name: str) -> npt.NDArray[Any]:
        out: npt.NDArray[Any] = (sub[name].to_numpy(dtype=object) if name in sub
                                 else np.array([np.nan] * len(sub), dtype=object))
        return out

    def first(mask: npt.NDArray[np.bool_], values: npt.NDArray[Any],
              rows: npt.NDArray[np.intp] | None = None) -> list[Any]:
        """Per person, the value of its first row where ``mask`` holds (None if none)."""
        at = np.flatnonzero(mask) if rows is None else rows[mask[rows]]
        out = np.full(n, None, dtype=object)
        groups, firsts = np.unique(codes[at], return_index=True)
        out[groups] = values[at[firsts]]
        return out.tolist()

    invalid = column("invalid_ids")
    inv_codes, inv_values = pd.factorize(invalid, use_na_sentinel=False)
    present = {name: _present_mask(column(name)) for name in (*ID_KINDS, *IDENTITY_FIELDS)}
    ids = {}
    for kind in ID_KINDS:
        allowed = np.array([kind not in str(v or "") for v in inv_values], dtype=bool)
        ids[kind] = first(present[kind] & allowed[inv_codes], column(kind))
    feeds = column("feed")
    registry_rows = np.flatnonzero(feeds == "contributors")
    names = column("name_en")
    truthy = np.fromiter((bool(v) for v in names), dtype=bool, count=len(names))
    name_any = first(truthy, names)
    name_registry = first(truthy, names, registry_rows)
    identity = {c: first(present[c], column(c)) for c in IDENTITY_FIELDS}
    keys = column("key")
    cids: list[list[str]] = [[] for _ in range(n)]
    for g, key in zip(codes[registry_rows].tolist(), keys[registry_rows].tolist(),
                      strict=True):
        cids[g].append(str(key))
    views: dict[str, PersonView] = {}
    for g, pid in enumerate(pids.tolist()):
        own = sorted(cids[g])
        worker: dict[str, Any] = {"contributor_id": own[0] if own else None,
                                  "contributor_ids": own}
        for kind in ID_KINDS:
            worker[kind] = ids[kind][g]
        worker["name_en"] = name_registry[g] if own else name_any[g]
        person_identity = {kind: worker[kind] for kind in ID_KINDS} | {
            c: identity[c][g] for c in IDENTITY_FIELDS}
        views[str(pid)] = PersonView(persons[str(pid)], worker, own, person_identity)
    for pid, claims in registry_claims(records, wanted).items():
        if pid in views:
            views[pid].claimed_by = claims
    return views


def registry_claims(records: pd.DataFrame,
                    wanted: set[str]) -> dict[str, list[tuple[str, str, str]]]:
    """Per wanted person, the registry records of other persons that carry one of its
    identifier values (same kind, same text, valid or not): ``(kind, value, contributor
    id)``, sorted.

    The resolver may rightly keep such records apart — a passport reissued to somebody
    else, a typo landing on another's number — or wrongly, when names and dates disagree
    more than the model allows (found at a million generated workers: a registry record
    with the worker's passport, the name in the other order and the birth year mistyped
    scored below the review band, and the worker was registered a second time). Either
    way registering the person is an officer's call: the auto-registration policy
    refuses, and the finding shows the records."""
    if "person_id" not in records or not wanted:
        return {}
    person = column_values(records["person_id"])
    registry = column_values(records["feed"]) == "contributors"
    mine = records["person_id"].isin(wanted).to_numpy()
    keys = column_values(records["key"])
    found: dict[str, set[tuple[str, str, str]]] = {}
    for kind in ID_KINDS:
        if kind not in records:
            continue
        values = column_values(records[kind])
        present = _present_mask(values)
        held = pd.DataFrame({"value": values[present & registry],
                             "holder": person[present & registry],
                             "contributor": keys[present & registry]})
        if held.empty:
            continue
        asked = pd.DataFrame({"value": values[present & mine], "person": person[present & mine]}
                             ).drop_duplicates()
        both = asked.merge(held, on="value")
        both = both[both["person"] != both["holder"]]
        for pid, value, contributor in zip(both["person"].tolist(), both["value"].tolist(),
                                           both["contributor"].tolist(), strict=True):
            found.setdefault(str(pid), set()).add((kind, str(value), str(contributor)))
    return {pid: sorted(claims) for pid, claims in found.items()}


def column_values(series: pd.Series) -> Any:
    """The array under ``series``, not a copy: the NumPy array of a NumPy dtype (a
    ``.array`` wrapper would make a new frame scan it for missing values), the extension
    array of any other (datetimes with a zone)."""
    if isinstance(series.dtype, np.dtype):
        return series.to_numpy(copy=False)
    return series.array


def _present_mask(values: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Whether each value is present: not None, not NaN, not empty."""
    mask: npt.NDArray[np.bool_] = pd.notna(values) & (values != "")
    return mask


# what the lifecycle reads of a stored finding: never its JSON content
LIFECYCLE_COLUMNS = ("finding_id", "fingerprint", "rule", "person_id", "employer_id",
                     "severity", "status", "action", "confidence", "content_hash",
                     "last_seen_as_of", "resolution")


class Actor:
    """Turns a run's hits into decisions; one instance per unit of work.

    Writes go out in bulk at the end of :meth:`act`: new findings, then the changes to
    existing ones (one statement per set of changed columns), history, events and the
    audit chain; registrations are made before, all in one call to the registry."""

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
        self._updates: list[dict[str, Any]] = []
        self._identity: dict[str, dict[str, Any]] = {}  # person id -> identity details
        self._registered: dict[str, tuple[RegistrationRequest, Registration]] = {}
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
        if view.claimed_by:
            return None  # another person's registry record carries one of its identifiers
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
        existing = self._existing()
        keyed = [(fingerprint(h.rule, h.person_id, h.employer_id), h) for h in
                 sorted(hits, key=lambda h: (h.rule, h.person_id, h.employer_id or ""))]
        self._register_new(keyed, existing, views)
        seen: set[str] = set()
        for fp, hit in keyed:
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
        bulk_insert(self.conn, findings, self._new)
        self._apply_updates()
        for table, rows in ((finding_history, self._histories), (outbox, self.events)):
            bulk_insert(self.conn, table, rows)
        self.audit.flush()
        return self.stats

    def _existing(self) -> dict[str, dict[str, Any]]:
        """Every stored finding by fingerprint: the columns the lifecycle compares."""
        frame = read_frame(self.conn, select(*[findings.c[c] for c in LIFECYCLE_COLUMNS]),
                           distinct=("finding_id", "fingerprint", "content_hash"))
        columns = [frame[c].tolist() for c in LIFECYCLE_COLUMNS]
        del frame
        return {values[1]: dict(zip(LIFECYCLE_COLUMNS, values, strict=True))
                for values in zip(*columns, strict=True)}

    def _register_new(self, keyed: list[tuple[str, Hit]], existing: Mapping[str, Any],
                      views: Mapping[str, PersonView]) -> None:
        """Register every new finding the policy lets through, in finding order, in one
        call: the registry mints their ids as one by one (``RegistryGateway.register``)
        would have, without a round trip each."""
        requests: list[RegistrationRequest] = []
        for fp, hit in keyed:
            if fp in existing or self.catalogue.signs[hit.rule].action != "review":
                continue
            request = self.auto_registration(hit, views[hit.person_id])
            if request is not None:
                requests.append(replace(request, finding_id=finding_id(fp)))
        done = register_all(self.registry, self.conn, requests, self.now)
        self._registered = {str(r.finding_id): (r, d)
                            for r, d in zip(requests, done, strict=True)}

    def _content(self, hit: Hit, view: PersonView, action: str) -> dict[str, Any]:
        sign = self.catalogue.signs[hit.rule]
        return {
            "rule_version": sign.version, "severity": sign.severity, "action": action,
            "confidence": round(view.person.confidence, 6), "worker": view.worker,
            "evidence": [{"feed": f, "key": k} for f, k in hit.evidence],
            "details": {**hit.details, **self._identity_details(view)},
            "reasoning": sign.describe(),
        }

    def _identity_details(self, view: PersonView) -> dict[str, Any]:
        """The person's links and doubts, explained: once per person, whatever its hits."""
        pid = view.person.person_id
        if pid not in self._identity:
            self._identity[pid] = identity_details(view)
        return self._identity[pid]

    def _open(self, fp: str, hit: Hit, view: PersonView) -> None:
        sign = self.catalogue.signs[hit.rule]
        fid = finding_id(fp)
        registered = self._registered.get(fid)
        action = "auto_register" if registered else sign.action
        content = self._content(hit, view, action)
        row = {
            "finding_id": fid, "fingerprint": fp, "rule": hit.rule,
            "person_id": hit.person_id, "employer_id": hit.employer_id, "status": "open",
            "content_hash": _hash(content), "first_seen": self.now, "last_seen": self.now,
            "last_seen_as_of": self.as_of, "resolved_at": None, "resolution": None, **content,
        }
        self._new.append(row)
        self._history(fid, None, "open", "signs of violation observed")
        self.audit.append(self.now, ACTOR, "finding.open", fid,
                          {"rule": hit.rule, "employer_id": hit.employer_id,
                           "person_id": hit.person_id, "action": action})
        self._event("finding.opened", hit.person_id, self._summary(row))
        self.stats.opened += 1
        if registered is not None:
            self._register(row, *registered)

    def _register(self, row: dict[str, Any], request: RegistrationRequest,
                  done: Registration) -> None:
        fid = row["finding_id"]
        row.update(status="resolved", resolution="auto_registered", resolved_at=self.now)
        worker = row["worker"]
        if not worker.get("contributor_id"):  # the worker is now a known contributor
            row["worker"] = {**worker, "contributor_id": done.contributor_id,
                             "contributor_ids": [done.contributor_id]}
        self._history(fid, "open", "resolved",
                      f"auto-registered: engagement {done.engagement_id}")
        details = {"finding_id": fid, "employer_id": request.employer_id,
                   "contributor_id": done.contributor_id, "engagement_id": done.engagement_id,
                   "created_contributor": done.created_contributor,
                   "start_date": request.start_date.isoformat(),
                   "contributory_wage": request.contributory_wage}
        self.audit.append(self.now, ACTOR, "registration.auto_register", fid, details)
        self._event("registration.auto_registered", row["person_id"], details)
        self.stats.auto_registered += 1

    def _revisit(self, row: dict[str, Any], hit: Hit, view: PersonView) -> None:
        status = row["status"]
        action = row["action"] if row["action"] == "auto_register" else \
            self.catalogue.signs[hit.rule].action
        content = self._content(hit, view, action)
        content_hash = _hash(content)
        changed = content_hash != row["content_hash"]
        values: dict[str, Any] = {}
        if row["last_seen_as_of"] is None or self.as_of > _as_date(row["last_seen_as_of"]):
            values.update(last_seen=self.now, last_seen_as_of=self.as_of)
        reopen = (status == "resolved" and row["resolution"] != "auto_registered") or (
            status == "dismissed" and changed)
        if reopen:
            values.update(status="open", resolved_at=None, resolution=None)
        if changed:
            values.update(content_hash=content_hash, **content)
        if values:
            self._update(row["finding_id"], values)
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
        self._update(row["finding_id"], {"status": "resolved", "resolution": "condition_cleared",
                                         "resolved_at": self.now})
        self._history(row["finding_id"], row["status"], "resolved", "condition no longer holds")
        self.audit.append(self.now, ACTOR, "finding.resolve", row["finding_id"],
                          {"rule": row["rule"], "from": row["status"]})
        self._event("finding.resolved", row["person_id"],
                    self._summary({**row, "status": "resolved"}))
        self.stats.resolved += 1

    # -- helpers --------------------------------------------------------------------------

    def _update(self, fid: str, values: dict[str, Any]) -> None:
        self._updates.append({"_finding_id": fid, **values})

    def _apply_updates(self) -> None:
        """The changes to existing findings: one executemany per set of changed columns
        (a finding changes at most once a run)."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for change in self._updates:
            groups.setdefault(tuple(change), []).append(change)
        for keys, changes in groups.items():
            columns = [k for k in keys if k != "_finding_id"]
            stmt = (update(findings)
                    .where(findings.c.finding_id == bindparam("_finding_id"))
                    .values({c: bindparam(f"_new_{c}") for c in columns}))
            self.conn.execute(stmt, [{"_finding_id": ch["_finding_id"],
                                      **{f"_new_{c}": ch[c] for c in columns}}
                                     for ch in changes])
        self._updates = []

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


def finding_id(fp: str) -> str:
    """A finding's id: derived from its fingerprint, the same in every run and database."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"reconciler:finding:{fp}"))


def identity_details(view: PersonView) -> dict[str, Any]:
    """A person's identity links and doubts (at most ten each) with their explanations."""
    out: dict[str, Any] = {}
    for key, links in (("identity_links", view.person.links),
                       ("identity_doubts", view.person.doubts)):
        if links:
            out[key] = [{"records": [link.ref_a, link.ref_b],
                         "probability": round(link.probability, 6),
                         "weights": dict(link.weights), "explanation": link.explain()}
                        for link in links[:10]]
    if view.claimed_by:
        out["identifiers_on_other_registry_records"] = [
            {"kind": kind, "value": value, "contributor_id": contributor}
            for kind, value, contributor in view.claimed_by[:10]]
    return out


def register_all(registry: RegistryGateway, conn: Connection,
                 requests: list[RegistrationRequest], now: datetime) -> list[Registration]:
    """``registry.register`` for each request in order — in one call where the gateway
    offers ``register_many`` (the embedded one does)."""
    if not requests:
        return []
    many = getattr(registry, "register_many", None)
    if many is not None:
        return list(many(conn, requests, now))
    return [registry.register(conn, request, now) for request in requests]


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
