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

import numpy as np
import numpy.typing as npt
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


_NO_DAY = np.iinfo(np.int64).min  # _ordinals: no date
_EPOCH = date(1970, 1, 1).toordinal()


def _ordinals(values: pd.Series) -> np.ndarray:
    """``_d(v).toordinal()`` of every value, ``_NO_DAY`` where ``_d`` gives None — in numpy
    for a datetime64 column, value by value otherwise."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_localize(None)  # _d reads the wall-clock date
    if values.dtype.kind == "M":
        days = values.to_numpy().astype("datetime64[D]")
        out = days.astype(np.int64) + _EPOCH
        out[np.isnat(days)] = _NO_DAY
        return np.asarray(out, dtype=np.int64)
    return np.array([d.toordinal() if (d := _d(v)) is not None else _NO_DAY for v in values],
                    dtype=np.int64)


def _by_pair(rows: pd.DataFrame, evidence: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``columns`` of the evidence row of each of ``rows``' (person_id, employer_id), in
    ``rows``' order — NaN where there is none (what a left merge on the two would give),
    looked up by the pair's integer code."""
    found = evidence.set_index("_pair")[columns].reindex(rows["_pair"].to_numpy())
    return found.reset_index(drop=True)


def _has_pair(rows: pd.DataFrame, among: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Whether each of ``rows``' (person_id, employer_id) is one of ``among``'s."""
    return np.isin(rows["_pair"].to_numpy(), among["_pair"].to_numpy())


def _active_engagements(facts: Facts) -> pd.DataFrame:
    e = facts.engagements
    return e[(e["status"] == "ACTIVE") & e["person_id"].notna()]


def _wrong_employer_pairs(facts: Facts) -> dict[str, tuple[set[str], set[str]]]:
    """person -> (registered employers without current evidence, working employers), in the
    order the persons first appear among the active engagements."""
    ev = facts.evidence
    current = ev[ev["current"]]
    active = _active_engagements(facts)
    idle = ~_has_pair(active, current)
    # only a person with an idle registration and current work somewhere can qualify
    maybe = active["person_id"][idle & active["person_id"].isin(current["person_id"]).to_numpy()]
    if maybe.empty:
        return {}
    suspects = set(maybe)
    active = active[active["person_id"].isin(suspects)]
    current = current[current["person_id"].isin(suspects)]
    working = _sets(current["person_id"], current["employer_id"])
    registered = _sets(active["person_id"], active["employer_id"])
    out: dict[str, tuple[set[str], set[str]]] = {}
    for person, regs in registered.items():
        works = working.get(person, set())
        idle_at = {a for a in regs if a not in works}  # registered, no current evidence there
        if idle_at and works:
            out[str(person)] = (idle_at, works)
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
    active = _active_engagements(facts)
    cutoff = (facts.as_of - grace).toordinal()
    start_day = _ordinals(ev["started"])
    cand = ev[ev["current"].to_numpy(dtype=bool) & (start_day != _NO_DAY)
              & (start_day < cutoff)]
    cand = cand[~_has_pair(cand, active)]  # no ACTIVE engagement with E
    hits: list[Hit] = []
    for row in cand.itertuples(index=False):
        started = _d(row.started)
        if started is None or started >= facts.as_of - grace:
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
    ev = facts.evidence.assign(start_any=facts.evidence["contract_start_any"].where(
        facts.evidence["contract_start_any"].notna(), facts.evidence["payroll_first"]))
    found = _by_pair(e, ev, ["start_any", "payroll_first"])
    # prefilter: registered more than grace days after the earliest start the loop can see
    days = np.stack([_ordinals(e["start_date"]), _ordinals(found["start_any"]),
                     _ordinals(found["payroll_first"])])
    earliest = np.where(days == _NO_DAY, np.iinfo(np.int64).max, days).min(axis=0)
    registered_on = _ordinals(e["registered_on"])
    late = (earliest != np.iinfo(np.int64).max) & (registered_on != _NO_DAY)
    late[late] = registered_on[late] - earliest[late] > grace
    e, found = e[late], found[late]
    hits: list[Hit] = []
    for row, start_any, first in zip(e.itertuples(index=False), found["start_any"],
                                     found["payroll_first"], strict=True):
        candidates = [d for d in (_d(row.start_date), _d(start_any), _d(first)) if d]
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
    active = _active_engagements(facts)
    found = _by_pair(active, facts.evidence, ["evidence_wage", "evidence_wage_source"])
    has_wage = found["evidence_wage"].notna().to_numpy()
    active, found = active[has_wage], found[has_wage]
    hits: list[Hit] = []
    for row, evidence_wage, source in zip(active.itertuples(index=False),
                                          found["evidence_wage"].tolist(),
                                          found["evidence_wage_source"], strict=True):
        declared = _num(row.contributory_wage)
        if declared is None or evidence_wage <= 0:
            continue
        if declared < (1 - tolerance) * evidence_wage:
            hits.append(Hit("wage_underdeclared", row.person_id, row.employer_id, {
                "declared": declared, "evidence_wage": float(evidence_wage),
                "evidence_wage_source": source,
                "shortfall": round(float(evidence_wage) - declared, 2),
                "engagement_id": row.engagement_id,
            }, evidence=[("registry", str(row.engagement_id))]))
    return hits


_IDENTITY_COLUMNS = ("date_of_birth", "nationality", "sex")
_IDENTITY_FEEDS = ("contracts", "permits")


@check
def identity_mismatch(facts: Facts, params: Mapping[str, Any]) -> list[Hit]:
    """The registry's date of birth, nationality or sex differs from a value on which
    ``min_sources`` or more partner *feeds* agree (two contracts are one source). A year-only
    or otherwise compatible registry date is not a difference. Where several agreed values
    differ, the one the partners stated last (first seen latest) is named."""
    need = int(params.get("min_sources", 2))
    agreed = _agreed_values(facts, need)
    reg = facts.contributors[facts.contributors["person_id"].notna()]
    if agreed.empty or reg.empty:
        return []
    asked = []
    position = np.arange(len(reg))
    for col in _IDENTITY_COLUMNS:
        known = reg[col].notna().to_numpy()
        asked.append(pd.DataFrame({"r": position[known],
                                   "person_id": reg["person_id"].to_numpy()[known],
                                   "col": col,
                                   "registry": reg[col][known].astype(str).to_numpy()}))
    pairs = pd.concat(asked, ignore_index=True).merge(agreed, on=["person_id", "col"])
    same = (pairs["registry"] == pairs["value"]).to_numpy()
    for i in np.flatnonzero(~same & (pairs["col"] == "date_of_birth").to_numpy()):
        same[i] = _same("date_of_birth", pairs["registry"].iat[i], pairs["value"].iat[i])
    differ = (pairs[~same].sort_values("first", kind="stable")
              .drop_duplicates(["r", "col"], keep="last"))
    found: dict[int, dict[str, dict[str, str]]] = defaultdict(dict)
    rank = {col: i for i, col in enumerate(_IDENTITY_COLUMNS)}
    for r, col, registry, value, feeds in sorted(
            zip(differ["r"].tolist(), differ["col"], differ["registry"], differ["value"],
                differ["feeds"], strict=True), key=lambda d: (d[0], rank[d[1]])):
        found[r][col] = {"registry": registry, "partners": value, "sources": feeds}
    current = _current_employer(facts)
    persons, contributor_ids = reg["person_id"].tolist(), reg["contributor_id"].tolist()
    hits = [Hit("identity_mismatch", persons[r], current.get(persons[r]),
                {"contributor_id": contributor_ids[r], "differences": diffs},
                evidence=[("registry", str(contributor_ids[r]))])
            for r, diffs in sorted(found.items())]
    return _one_per_person(hits)


def _agreed_values(facts: Facts, need: int) -> pd.DataFrame:
    """(person_id, col, value) stated by ``need`` or more partner feeds, with ``first`` — the
    order in which the feeds first state each value of a person's column (contracts before
    permits, rows in order) — and ``feeds``, their names joined."""
    blocks = []
    seen = 0
    for bit, feed in enumerate(_IDENTITY_FEEDS):
        frame = getattr(facts, feed)
        for col in _IDENTITY_COLUMNS:
            sub = frame[["person_id", col]].dropna()
            blocks.append(pd.DataFrame({"person_id": sub["person_id"].to_numpy(), "col": col,
                                        "value": sub[col].astype(str).to_numpy(),
                                        "feed": 1 << bit,
                                        "first": np.arange(seen, seen + len(sub))}))
            seen += len(sub)
    said = pd.concat(blocks, ignore_index=True).drop_duplicates(
        ["person_id", "col", "value", "feed"])
    agreed = said.groupby(["person_id", "col", "value"], sort=False).agg(
        first=("first", "min"), feeds=("feed", "sum"), n=("feed", "size"))
    agreed = agreed[agreed["n"] >= need].reset_index()
    names = {mask: ",".join(sorted(f for bit, f in enumerate(_IDENTITY_FEEDS)
                                   if mask & (1 << bit)))
             for mask in range(1 << len(_IDENTITY_FEEDS))}
    agreed["feeds"] = agreed["feeds"].map(names)
    return agreed


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
    ev = facts.evidence[facts.evidence["current"].to_numpy(dtype=bool)]
    # the evidence is in (person, employer) order: a stable sort on (person, most sources)
    # leaves each person's employers in order, so a person's first row is the one wanted
    person = ev["_person"].to_numpy()
    order = np.lexsort((-ev["current_sources"].to_numpy(), person))
    first = order[np.r_[True, person[order][1:] != person[order][:-1]]] if len(order) else order
    return {str(k): str(v) for k, v in zip(ev["person_id"].to_numpy()[first],
                                           ev["employer_id"].to_numpy()[first], strict=True)}


@check
def stale_engagement(facts: Facts, params: Mapping[str, Any]) -> list[Hit]:
    """An ACTIVE engagement with E while the employment ended — contract with E terminated
    more than ``termination_days`` ago, a permit sponsored by E cancelled or in final exit,
    or E filed payroll for each of the last ``payroll_periods`` periods without the person —
    and no other current evidence at E."""
    cutoff = facts.as_of - timedelta(days=int(params.get("termination_days", 30)))
    n_periods = int(params.get("payroll_periods", 2))
    last = facts.payroll_periods[:n_periods]
    active = _active_engagements(facts)
    found = _by_pair(active, facts.evidence, ["current", "terminated_end", "permit_ended"])
    idle = ~found["current"].eq(True).to_numpy()  # current evidence at E: never stale
    active, found = active[idle], found[idle]
    pay = facts.payroll
    recent = pay[pay["period"].isin(last)]
    paid_recently = set(zip(recent["person_id"], recent["employer_id"], strict=True))
    hits: list[Hit] = []
    for row, terminated_end, permit_ended in zip(active.itertuples(index=False),
                                                 found["terminated_end"],
                                                 found["permit_ended"].eq(True), strict=True):
        pair = (row.person_id, row.employer_id)
        terminated = _d(terminated_end)
        reasons: list[str] = []
        if terminated is not None and terminated < cutoff:
            reasons.append(f"contract terminated on {terminated.isoformat()}")
        if permit_ended:
            reasons.append("permit cancelled or final exit")
        filed = facts.filed.get(str(row.employer_id), frozenset())
        if (len(last) == n_periods and all(p in filed for p in last)
                and pair not in paid_recently):
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
    ev = facts.evidence
    active = _active_engagements(facts)
    unseen = ~_has_pair(active, ev)
    hits: list[Hit] = []
    for row in active[unseen].itertuples(index=False):
        registered = _d(row.registered_on)
        if registered is None or registered >= cutoff:
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
    reg = reg[reg["person_id"].duplicated(keep=False)]  # a person with one record: no hit
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
