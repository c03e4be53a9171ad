"""One function per kind of check. Each reads :class:`Facts`, takes the sign's parameters
and returns :class:`Hit`s; precedence, severity and actions are applied elsewhere.

The wording of each condition follows ``shared/contracts/feeds.md`` (*Signs of violation*);
where the contract leaves a choice, the docstring says which was made.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pandas as pd

from reconciler.identity.normalize import parse_birth_date
from reconciler.rules.facts import Facts

EvidenceRef = tuple[str, str]  # (feed, key); registry records use the feed name "registry"


@dataclass
class Hit:
    rule: str
    person_id: str
    employer_id: str | None
    details: dict[str, Any]
    evidence: list[EvidenceRef] = field(default_factory=list)
    related_employers: tuple[str, ...] = ()  # e.g. where a wrongly-registered person is registered


Check = Callable[[Facts, Mapping[str, Any]], list[Hit]]
CHECKS: dict[str, Check] = {}


def check(fn: Check) -> Check:
    CHECKS[fn.__name__] = fn
    return fn


def _d(value: object) -> date | None:
    if value is None or (isinstance(value, float) and value != value) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return date(value.year, value.month, value.day)
    return value if isinstance(value, date) else None


def _iso(value: object) -> str | None:
    d = _d(value)
    return d.isoformat() if d else None


def _active_engagements(facts: Facts) -> pd.DataFrame:
    e = facts.engagements
    return e[(e["status"] == "ACTIVE") & e["person_id"].notna()]


def _wrong_employer_pairs(facts: Facts) -> dict[str, tuple[set[str], set[str]]]:
    """person -> (registered employers without current evidence, working employers)."""
    ev = facts.evidence
    current = ev[ev["current"]]
    working = _sets(current["person_id"], current["employer_id"])
    active = _active_engagements(facts)
    registered = _sets(active["person_id"], active["employer_id"])
    out: dict[str, tuple[set[str], set[str]]] = {}
    for person, regs in registered.items():
        works = working.get(person, set())
        idle = {a for a in regs if a not in works}  # registered, no current evidence there
        if idle and works:
            out[str(person)] = (idle, works)
    return out


@check
def wrong_employer(facts: Facts, params: Mapping[str, Any]) -> list[Hit]:
    """An ACTIVE engagement with A, current evidence at B ≠ A, none at A. The finding is at B
    (where the person works); A is named in the details. Literal reading of the contract: an
    active engagement at B as well does not stop the finding."""
    hits: list[Hit] = []
    pairs = _wrong_employer_pairs(facts)
    ev = facts.evidence
    cur = ev[ev["current"] & ev["person_id"].isin(list(pairs))]
    # what an officer's confirmation registers at B: the employment start and wage there
    at_b = {(p, e): (_d(s), _num(w)) for p, e, s, w in zip(
        cur["person_id"], cur["employer_id"], cur["started"], cur["evidence_wage"],
        strict=True)}
    for person, (regs, works) in pairs.items():
        for b in sorted(works):
            started, wage = at_b.get((person, b), (None, None))
            hits.append(Hit("wrong_employer", person, b, {
                "registered_at": sorted(regs), "working_at": b,
                "employment_started": started.isoformat() if started else None,
                "evidence_wage": wage}, related_employers=tuple(sorted(regs))))
    return hits


@check
def missing_registration(facts: Facts, params: Mapping[str, Any]) -> list[Hit]:
    """Current evidence at E, started more than ``grace_days`` ago, no ACTIVE engagement
    with E. The ``wrong_employer`` exception is applied by precedence, not here."""
    grace = timedelta(days=int(params.get("grace_days", 30)))
    ev = facts.evidence
    registered = set(zip(*[_active_engagements(facts)[c] for c in ("person_id", "employer_id")],
                         strict=True))
    cand = ev[ev["current"] & ev["started"].notna()]
    hits: list[Hit] = []
    for row in cand.itertuples(index=False):
        started = _d(row.started)
        if started is None or started >= facts.as_of - grace:
            continue
        if (row.person_id, row.employer_id) in registered:
            continue
        sources = [f for f, flag in (("contracts", row.contract_current),
                                     ("permits", row.permit_current),
                                     ("payroll", row.payroll_current)) if flag]
        hits.append(Hit("missing_registration", row.person_id, row.employer_id, {
            "employment_started": started.isoformat(),
            "days_unregistered": (facts.as_of - started).days,
            "current_sources": sources,
            "evidence_wage": _num(row.evidence_wage),
        }))
    return hits


@check
def late_registration(facts: Facts, params: Mapping[str, Any]) -> list[Hit]:
    """An engagement registered more than ``grace_days`` after the employment start — the
    earliest of its own start_date and the partner evidence with E (contract start, first
    payroll period). Engagements the reconciler registered itself are not the employer's
    lateness (that was the missing_registration finding) and are skipped."""
    grace = int(params.get("grace_days", 30))
    e = facts.engagements
    e = e[e["person_id"].notna() & e["registered_on"].notna()
          & (e["registered_by"] != "reconciler")]
    ev = facts.evidence.set_index(["person_id", "employer_id"])
    starts = ev["contract_start_any"].where(
        ev["contract_start_any"].notna(), ev["payroll_first"]).to_dict()
    firsts = ev["payroll_first"].to_dict()
    hits: list[Hit] = []
    for row in e.itertuples(index=False):
        candidates = [d for d in (_d(row.start_date), _d(starts.get((row.person_id,
                                                                     row.employer_id))),
                                  _d(firsts.get((row.person_id, row.employer_id)))) if d]
        if not candidates:
            continue
        start = min(candidates)
        registered = _d(row.registered_on)
        assert registered is not None
        delay = (registered - start).days
        if delay > grace:
            hits.append(Hit("late_registration", row.person_id, row.employer_id, {
                "employment_started": start.isoformat(), "registered_on": registered.isoformat(),
                "days_late": delay - grace, "engagement_id": row.engagement_id,
            }, evidence=[("registry", str(row.engagement_id))]))
    return hits


@check
def wage_underdeclared(facts: Facts, params: Mapping[str, Any]) -> list[Hit]:
    """An ACTIVE engagement whose contributory wage is below (1 − tolerance) of the evidence
    wage: basic + housing of E's latest payroll line for the person, else of the ACTIVE
    contract with E."""
    tolerance = float(params.get("tolerance", 0.05))
    ev = facts.evidence.set_index(["person_id", "employer_id"])
    wages = ev["evidence_wage"].dropna().to_dict()
    wage_source = ev["evidence_wage_source"].to_dict()
    hits: list[Hit] = []
    for row in _active_engagements(facts).itertuples(index=False):
        pair = (row.person_id, row.employer_id)
        evidence_wage = wages.get(pair)
        declared = _num(row.contributory_wage)
        if evidence_wage is None or declared is None or evidence_wage <= 0:
            continue
        if declared < (1 - tolerance) * evidence_wage:
            hits.append(Hit("wage_underdeclared", row.person_id, row.employer_id, {
                "declared": declared, "evidence_wage": float(evidence_wage),
                "evidence_wage_source": wage_source.get(pair),
                "shortfall": round(float(evidence_wage) - declared, 2),
                "engagement_id": row.engagement_id,
            }, evidence=[("registry", str(row.engagement_id))]))
    return hits


@check
def identity_mismatch(facts: Facts, params: Mapping[str, Any]) -> list[Hit]:
    """The registry's date of birth, nationality or sex differs from a value on which
    ``min_sources`` or more partner *feeds* agree (two contracts are one source). A year-only
    or otherwise compatible registry date is not a difference."""
    need = int(params.get("min_sources", 2))
    sources: dict[str, dict[str, dict[str, set[str]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(set)))
    for feed, frame in (("contracts", facts.contracts), ("permits", facts.permits)):
        for col in ("date_of_birth", "nationality", "sex"):
            sub = frame[["person_id", col]].dropna()
            for person, value in zip(sub["person_id"], sub[col], strict=True):
                sources[person][col][str(value)].add(feed)
    current = _current_employer(facts)
    hits: list[Hit] = []
    reg = facts.contributors[facts.contributors["person_id"].notna()]
    for row in reg.itertuples(index=False):
        person_sources = sources.get(row.person_id)
        if not person_sources:
            continue
        diffs: dict[str, dict[str, str]] = {}
        for col in ("date_of_birth", "nationality", "sex"):
            registry_value = getattr(row, col)
            if registry_value is None or registry_value != registry_value:
                continue
            for value, feeds in person_sources[col].items():
                if len(feeds) >= need and not _same(col, str(registry_value), value):
                    diffs[col] = {"registry": str(registry_value), "partners": value,
                                  "sources": ",".join(sorted(feeds))}
        if diffs:
            hits.append(Hit("identity_mismatch", row.person_id, current.get(row.person_id),
                            {"contributor_id": row.contributor_id, "differences": diffs},
                            evidence=[("registry", str(row.contributor_id))]))
    return _one_per_person(hits)


def _same(col: str, registry_value: str, partner_value: str) -> bool:
    """A year-only date agrees with any date of its year; otherwise the values must be equal
    — a swapped day and month in the registry *is* the difference an officer must fix."""
    if col != "date_of_birth":
        return registry_value == partner_value
    try:
        a, b = parse_birth_date(registry_value), parse_birth_date(partner_value)
    except ValueError:
        return registry_value == partner_value
    if a is None or b is None or "year" in (a.precision, b.precision):
        return a is None or b is None or a.year == b.year
    return (a.year, a.month, a.day) == (b.year, b.month, b.day)


def _one_per_person(hits: list[Hit]) -> list[Hit]:
    """Duplicate contributor records each compare; one finding per person carries them all."""
    merged: dict[str, Hit] = {}
    for hit in hits:
        kept = merged.get(hit.person_id)
        if kept is None:
            merged[hit.person_id] = hit
        else:
            kept.details.setdefault("more", []).append(hit.details)
            kept.evidence.extend(hit.evidence)
    return list(merged.values())


def _current_employer(facts: Facts) -> dict[str, str]:
    """The employer a person currently works at: most current sources, then latest start."""
    ev = facts.evidence[facts.evidence["current"]]
    ev = ev.sort_values(["current_sources", "employer_id"], ascending=[False, True])
    return {str(k): str(v) for k, v in ev.groupby("person_id")["employer_id"].first().items()}


@check
def stale_engagement(facts: Facts, params: Mapping[str, Any]) -> list[Hit]:
    """An ACTIVE engagement with E while the employment ended — contract with E terminated
    more than ``termination_days`` ago, a permit sponsored by E cancelled or in final exit,
    or E filed payroll for each of the last ``payroll_periods`` periods without the person —
    and no other current evidence at E."""
    cutoff = facts.as_of - timedelta(days=int(params.get("termination_days", 30)))
    n_periods = int(params.get("payroll_periods", 2))
    last = facts.payroll_periods[:n_periods]
    ev = facts.evidence
    pairs = list(zip(ev["person_id"], ev["employer_id"], strict=True))
    info = dict(zip(pairs, zip(ev["current"], ev["terminated_end"], ev["permit_ended"],
                               strict=True), strict=True))
    pay = facts.payroll
    paid = _sets(zip(pay["person_id"], pay["employer_id"], strict=True), pay["period"])
    hits: list[Hit] = []
    for row in _active_engagements(facts).itertuples(index=False):
        pair = (row.person_id, row.employer_id)
        current, terminated_end, permit_ended = info.get(pair, (False, None, False))
        if current:
            continue
        terminated = _d(terminated_end)
        reasons: list[str] = []
        if terminated is not None and terminated < cutoff:
            reasons.append(f"contract terminated on {terminated.isoformat()}")
        if permit_ended:
            reasons.append("permit cancelled or final exit")
        filed = facts.filed.get(str(row.employer_id), frozenset())
        if (len(last) == n_periods and all(p in filed for p in last)
                and not (paid.get(pair, set()) & set(last))):
            reasons.append(f"payroll filed for {', '.join(last)} without the person")
        if reasons:
            hits.append(Hit("stale_engagement", row.person_id, row.employer_id,
                            {"reasons": reasons, "engagement_id": row.engagement_id},
                            evidence=[("registry", str(row.engagement_id))]))
    return hits


@check
def ghost_registration(facts: Facts, params: Mapping[str, Any]) -> list[Hit]:
    """An ACTIVE engagement registered more than ``grace_days`` ago while no feed has any
    record of the person with E (no contract of any status, no permit, no payroll line)."""
    cutoff = facts.as_of - timedelta(days=int(params.get("grace_days", 30)))
    seen = set(zip(facts.evidence["person_id"], facts.evidence["employer_id"], strict=True))
    hits: list[Hit] = []
    for row in _active_engagements(facts).itertuples(index=False):
        registered = _d(row.registered_on)
        if registered is None or registered >= cutoff:
            continue
        if (row.person_id, row.employer_id) in seen:
            continue
        hits.append(Hit("ghost_registration", row.person_id, row.employer_id,
                        {"registered_on": registered.isoformat(),
                         "engagement_id": row.engagement_id},
                        evidence=[("registry", str(row.engagement_id))]))
    return hits


@check
def duplicate_contributor(facts: Facts, params: Mapping[str, Any]) -> list[Hit]:
    """Two or more contributor records resolved to one person."""
    reg = facts.contributors[facts.contributors["person_id"].notna()]
    hits: list[Hit] = []
    for person, ids in _sets(reg["person_id"], reg["contributor_id"]).items():
        if len(ids) > 1:
            hits.append(Hit("duplicate_contributor", str(person), None,
                            {"contributor_ids": sorted(map(str, ids))},
                            evidence=[("registry", str(i)) for i in sorted(ids)]))
    return hits


def _sets(keys: Iterable[Any], values: Iterable[Any]) -> dict[Any, set[Any]]:
    """key -> set of values; a plain loop is several times faster than groupby(...).agg(set)."""
    out: dict[Any, set[Any]] = defaultdict(set)
    for key, value in zip(keys, values, strict=True):
        out[key].add(value)
    return out


def _num(value: object) -> float | None:
    if value is None:
        return None
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if f != f else f
