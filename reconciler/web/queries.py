"""What the desk reads: the queue (filters, SLA, search, pages) and one finding in full."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Select,
    String,
    Text,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    or_,
    select,
)

from reconciler.storage import finding_history, findings, registrations, source_records
from reconciler.web.settings import WebSettings
from reconciler.web.tables import finding_reviews, reversal_requests

STATUSES = ("open", "in_review", "confirmed", "dismissed", "resolved")
SEVERITIES = ("high", "medium", "low")


class FindingFilter(BaseModel):
    """The queue's filters; every field optional. ``status=todo`` (the default) is what still
    needs a person: open, in review, or an auto-registration nobody has confirmed yet."""

    model_config = ConfigDict(extra="ignore")

    rule: str | None = Field(default=None, max_length=48, pattern=r"^[a-z_]*$")
    severity: Literal["", "high", "medium", "low"] | None = None
    employer_id: str | None = Field(default=None, max_length=20)
    status: Literal["", "todo", "all", "open", "in_review", "confirmed", "dismissed",
                    "resolved"] | None = "todo"
    assignee: str | None = Field(default=None, max_length=64,
                                 description="a username, `me`, or `none` (unassigned)")
    min_age_days: int | None = Field(default=None, ge=0, le=100_000)
    max_age_days: int | None = Field(default=None, ge=0, le=100_000)
    due_before: date | None = None
    overdue: bool | None = None
    q: str | None = Field(default=None, max_length=100,
                          description="any identifier, a finding, person or employer id, "
                                      "or part of a name")

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        # an HTML form sends every field; an empty one means "no filter"
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items() if v not in ("", None)}
        return data

    def as_query(self) -> dict[str, str]:
        return {k: str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in self.model_dump(exclude_none=True).items() if v != ""}


def _due_expr(conn: Connection, settings: WebSettings) -> ColumnElement[Any]:
    days = case(*((findings.c.rule == rule, literal(n)) for rule, n in
                  settings.sla_days.items()), else_=literal(settings.default_sla_days))
    if conn.dialect.name == "postgresql":
        return findings.c.first_seen + func.make_interval(0, 0, 0, cast(days, Integer))
    return func.datetime(findings.c.first_seen, "+" + cast(days, String) + " days")


def _due_before(moment: datetime, settings: WebSettings) -> ColumnElement[bool]:
    """first_seen + SLA(rule) < moment, written per rule so the index on first_seen serves."""
    known = list(settings.sla_days)
    parts = [and_(findings.c.rule == rule, findings.c.first_seen < moment - timedelta(days=n))
             for rule, n in settings.sla_days.items()]
    parts.append(and_(findings.c.rule.not_in(known), findings.c.first_seen <
                      moment - timedelta(days=settings.default_sla_days)))
    return or_(*parts)


def _where(f: FindingFilter, me: str, now: datetime, settings: WebSettings,
           ) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if f.rule:
        conds.append(findings.c.rule == f.rule)
    if f.severity:
        conds.append(findings.c.severity == f.severity)
    if f.employer_id:
        conds.append(findings.c.employer_id == f.employer_id)
    if f.status in (None, "", "todo"):
        conds.append(or_(findings.c.status.in_(("open", "in_review")), and_(
            findings.c.resolution == "auto_registered", finding_reviews.c.decision.is_(None))))
    elif f.status != "all":
        conds.append(findings.c.status == f.status)
    if f.assignee:
        if f.assignee == "none":
            conds.append(finding_reviews.c.assignee.is_(None))
        else:
            conds.append(finding_reviews.c.assignee == (me if f.assignee == "me"
                                                         else f.assignee))
    if f.min_age_days is not None:
        conds.append(findings.c.first_seen <= now - timedelta(days=f.min_age_days))
    if f.max_age_days is not None:
        conds.append(findings.c.first_seen >= now - timedelta(days=f.max_age_days))
    if f.due_before is not None:
        conds.append(_due_before(datetime.combine(f.due_before, time(), UTC), settings))
    if f.overdue is True:
        conds.append(_due_before(now, settings))
    elif f.overdue is False:
        conds.append(~_due_before(now, settings))
    if f.q and f.q.strip():
        term = f.q.strip()
        pattern = "%" + term.replace("\\", "").replace("%", "").replace("_", "\\_") + "%"
        conds.append(or_(findings.c.finding_id == term, findings.c.person_id == term,
                         findings.c.employer_id == term,
                         cast(findings.c.worker, Text).ilike(pattern, escape="\\"))
                     if len(term) >= 3 else
                     or_(findings.c.finding_id == term, findings.c.employer_id == term,
                         false()))
    return conds


def _base(conds: list[ColumnElement[bool]], *columns: Any) -> Select[Any]:
    return (select(*columns)
            .select_from(findings.outerjoin(finding_reviews,
                                            finding_reviews.c.finding_id
                                            == findings.c.finding_id))
            .where(*conds))


def queue(conn: Connection, f: FindingFilter, me: str, now: datetime, settings: WebSettings,
          limit: int, offset: int) -> tuple[int, list[dict[str, Any]]]:
    """(total matching, one page) — overdue first, then by due date."""
    conds = _where(f, me, now, settings)
    total = conn.execute(_base(conds, func.count())).scalar_one()
    rows = conn.execute(
        _base(conds, findings.c.finding_id, findings.c.rule, findings.c.severity,
              findings.c.status, findings.c.resolution, findings.c.employer_id,
              findings.c.person_id, findings.c.worker, findings.c.confidence,
              findings.c.first_seen, finding_reviews.c.assignee, finding_reviews.c.escalated,
              finding_reviews.c.decision)
        .order_by(_due_expr(conn, settings), findings.c.finding_id)
        .limit(limit).offset(offset)).mappings().all()
    return int(total), [summary(r, now, settings) for r in rows]


def selection(conn: Connection, f: FindingFilter, me: str, now: datetime,
              settings: WebSettings, limit: int) -> list[str]:
    conds = _where(f, me, now, settings)
    return list(conn.execute(_base(conds, findings.c.finding_id)
                             .order_by(findings.c.finding_id).limit(limit)).scalars())


def summary(row: Mapping[Any, Any], now: datetime, settings: WebSettings) -> dict[str, Any]:
    first_seen = _aware(row["first_seen"])
    due = first_seen + timedelta(days=settings.sla_for(row["rule"]))
    open_ = row["status"] in ("open", "in_review") or (
        row["resolution"] == "auto_registered" and not row.get("decision"))
    worker = row["worker"] or {}
    return {
        "finding_id": row["finding_id"], "rule": row["rule"], "severity": row["severity"],
        "status": row["status"], "resolution": row["resolution"],
        "employer_id": row["employer_id"], "person_id": row["person_id"],
        "name_en": worker.get("name_en"), "confidence": row["confidence"],
        "first_seen": first_seen, "due_at": due, "overdue": open_ and due < now,
        "age_days": (now - first_seen).days, "assignee": row.get("assignee"),
        "escalated": bool(row.get("escalated")), "decision": row.get("decision"),
    }


# -- one finding --------------------------------------------------------------------------

COMPARED = ["name_en", "name_ar", "date_of_birth", "nationality", "sex", "national_id",
            "residence_id", "border_number", "passport_number", "employer_id", "start_date",
            "wage"]
PARTNER_FEEDS = ("contracts", "permits", "payroll")


def finding_detail(conn: Connection, finding_id: str, now: datetime,
                   settings: WebSettings) -> dict[str, Any] | None:
    row = conn.execute(
        _base([findings.c.finding_id == finding_id], findings,
              finding_reviews.c.assignee, finding_reviews.c.escalated,
              finding_reviews.c.decision, finding_reviews.c.decided_by,
              finding_reviews.c.reason)).mappings().first()
    if row is None:
        return None
    out = summary(row, now, settings)
    out.update({k: row[k] for k in ("worker", "evidence", "details", "reasoning", "action",
                                    "last_seen", "resolved_at")})
    out["decided_by"] = row["decided_by"]
    out["reason"] = row["reason"]
    out["facts"] = {k: v for k, v in (row["details"] or {}).items()
                    if not k.startswith("identity_")}
    out["history"] = [dict(h) for h in conn.execute(
        select(finding_history.c.at, finding_history.c.actor, finding_history.c.from_status,
               finding_history.c.to_status, finding_history.c.note)
        .where(finding_history.c.finding_id == finding_id)
        .order_by(finding_history.c.id)).mappings()]
    out["reversals"] = [dict(r) for r in conn.execute(
        select(reversal_requests).where(reversal_requests.c.finding_id == finding_id)
        .order_by(reversal_requests.c.id)).mappings()]
    out["comparison"] = compare_evidence(conn, row)
    out["links"] = [describe_link(link, doubt=False)
                    for link in (row["details"] or {}).get("identity_links", [])]
    out["links"] += [describe_link(link, doubt=True)
                     for link in (row["details"] or {}).get("identity_doubts", [])]
    return out


def compare_evidence(conn: Connection, row: Mapping[Any, Any]) -> list[dict[str, Any]]:
    """Each partner record beside the registry record, field by field."""
    worker = row["worker"] or {}
    keys = {(e["feed"], e["key"]) for e in row["evidence"] or []}
    partner_keys = [k for f, k in keys if f in PARTNER_FEEDS]
    registry_keys = [k for f, k in keys if f == "registry"] + list(
        worker.get("contributor_ids") or [])
    partner = conn.execute(select(source_records).where(
        source_records.c.feed.in_(PARTNER_FEEDS), source_records.c.record_key.in_(partner_keys),
        source_records.c.is_current).order_by(source_records.c.feed)).mappings().all()
    registry_rows = conn.execute(select(source_records).where(
        source_records.c.feed.in_(("contributors", "engagements")),
        source_records.c.record_key.in_(registry_keys), source_records.c.is_current)
    ).mappings().all()
    reg: dict[str, Any] = {}
    for r in sorted(registry_rows, key=lambda r: r["feed"] != "contributors"):
        for col in COMPARED:
            value = _value(r, col)
            if value is not None and reg.get(col) is None:
                reg[col] = value
    own = conn.execute(select(registrations.c.payload).where(
        registrations.c.finding_id == row["finding_id"])).scalars().all()
    for payload in own:
        for col in COMPARED:
            value = payload.get("contributory_wage" if col == "wage" else col)
            if value not in (None, "") and reg.get(col) is None:
                reg[col] = value
    pairs = []
    for p in partner:
        if (p["feed"], p["record_key"]) not in keys:
            continue
        fields = []
        for col in COMPARED:
            left, right = _value(p, col), reg.get(col)
            if left is None and right is None:
                continue
            differs = left is not None and right is not None and _norm(left) != _norm(right)
            fields.append({"field": col, "partner": left, "registry": right,
                           "differs": differs, "missing": right is None and bool(reg)})
        pairs.append({"feed": p["feed"], "key": p["record_key"], "fields": fields,
                      "registry_found": bool(reg)})
    return pairs


def _value(r: Mapping[Any, Any], col: str) -> Any:
    if col == "wage":
        if r.get("contributory_wage") is not None:
            return r["contributory_wage"]
        if r.get("basic_wage") is not None:
            return (r["basic_wage"] or 0) + (r.get("housing_allowance") or 0)
        return None
    value = r.get(col)
    return None if value in (None, "") else value


def _norm(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return " ".join(str(value).upper().replace("-", " ").split())


def describe_link(link: Mapping[str, Any], doubt: bool) -> dict[str, Any]:
    """A link's per-field weights in words: how strongly each field spoke for or against."""
    words = []
    for name, weight in (link.get("weights") or {}).items():
        w = float(weight)
        strength = ("very strong" if abs(w) >= 8 else "strong" if abs(w) >= 3
                    else "moderate" if abs(w) >= 1 else "weak")
        if name == "prior":
            words.append({"field": name, "weight": w,
                          "words": "starting point: two records rarely belong to one person"})
            continue
        direction = "for" if w > 0 else "against"
        words.append({"field": name, "weight": w,
                      "words": f"{name}: {strength} evidence {direction} the same person"})
    return {"records": link.get("records", []), "probability": link.get("probability"),
            "doubt": doubt, "weights": words}


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
