"""What the partners and the registry say, per person and employer, ready for the checks.

:func:`build_facts` joins every current record to its person and summarises, for each
(person, employer) pair, the evidence the contract's rule catalogue speaks of: *current
evidence at E*, *employment started*, the evidence wage, endings. The checks read these
tables and never touch the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

EVIDENCE_FEEDS = ("contracts", "permits", "payroll")


@dataclass
class Facts:
    as_of: date
    contracts: pd.DataFrame
    permits: pd.DataFrame
    payroll: pd.DataFrame
    contributors: pd.DataFrame
    engagements: pd.DataFrame
    evidence: pd.DataFrame  # one row per (person_id, employer_id) seen in any partner feed
    # every frame but the contributors has ``_pair``: its (person_id, employer_id) as one
    # integer, the same in all of them (-1: either missing) — see build_facts
    payroll_periods: list[str]  # every period present in the payroll feed, newest first
    filed: dict[str, frozenset[str]]  # employer -> periods it filed payroll for


def _period_start(period: pd.Series) -> pd.Series:
    return pd.to_datetime(period + "-01", errors="coerce")


def _dates(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """datetime64 columns: min/max per group run in C, not per Python object (50x faster).
    The checks read them back as ``datetime.date`` through ``checks._d``."""
    frame = frame.copy(deep=False)  # new columns replace, never write into, the caller's
    for col in columns:
        frame[col] = pd.to_datetime(frame[col], errors="coerce")
    return frame


def build_facts(as_of: date, contracts: pd.DataFrame, permits: pd.DataFrame,
                payroll: pd.DataFrame, contributors: pd.DataFrame,
                engagements: pd.DataFrame) -> Facts:
    """Every input frame already carries ``person_id`` (engagements through their contributor)."""
    c = _dates(contracts, "start_date", "end_date")
    c["wage"] = c["basic_wage"].fillna(0) + c["housing_allowance"].fillna(0)
    c["current"] = (c["status"] == "ACTIVE") & (c["start_date"] <= pd.Timestamp(as_of))
    p = _dates(permits, "issue_date")
    p["current"] = p["status"] == "VALID"
    periods = sorted(set(payroll["period"].dropna()), reverse=True)
    newest = periods[0] if periods else None
    pay = payroll.copy(deep=False)
    pay["wage"] = pay["basic_wage"].fillna(0) + pay["housing_allowance"].fillna(0)
    pay["current"] = pay["period"] == newest
    pay["period_start"] = _period_start(pay["period"])
    # One integer per (person, employer) pair, numbered in the pairs' sorted order: every
    # summary groups by it — a sort of integers, not of strings, each time — and the
    # evidence gets its (person_id, employer_id) index back at the end. -1: no pair. The
    # engagements are numbered with the partner records, and every frame and the evidence
    # keep their ``_pair`` column: the checks match registrations to evidence on it.
    (c_pair, p_pair, pay_pair, e_pair), people, employers = _pair_codes(c, p, pay,
                                                                       engagements)
    c["_pair"], p["_pair"], pay["_pair"] = c_pair, p_pair, pay_pair
    engagements = engagements.assign(_pair=e_pair)
    cp, pp, payp = c, p, pay

    def paired(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["_pair"].to_numpy() >= 0]

    active = cp[cp["status"] == "ACTIVE"]
    latest_active = paired(active.sort_values("updated_at")).groupby("_pair").tail(1) \
        .set_index("_pair")
    active = paired(active)
    contract_summary = paired(cp).groupby("_pair").agg(
        contract_any=("key", "size"),
        contract_current=("current", "any"),
        contract_start_any=("start_date", "min"),
    )
    contract_summary["contract_start_active"] = active.groupby("_pair")["start_date"].min()
    contract_summary["contract_wage"] = latest_active["wage"]
    contract_summary["contract_key"] = latest_active["key"]
    terminated = paired(cp[(cp["status"] == "TERMINATED") & cp["end_date"].notna()])
    contract_summary["terminated_end"] = terminated.groupby("_pair")["end_date"].max()

    permit_summary = paired(pp).groupby("_pair").agg(
        permit_any=("key", "size"),
        permit_current=("current", "any"),
        permit_issue=("issue_date", "min"),
    )
    ended = paired(pp[pp["status"].isin(["CANCELLED", "FINAL_EXIT"])])
    permit_summary["permit_ended"] = ended.groupby("_pair")["key"].size() > 0

    pay_sorted = paired(payp.sort_values("period"))
    payroll_summary = pay_sorted.groupby("_pair").agg(
        payroll_any=("key", "size"),
        payroll_current=("current", "any"),
        payroll_first=("period_start", "min"),
    )
    last_line = pay_sorted.groupby("_pair").tail(1).set_index("_pair")
    payroll_summary["payroll_wage"] = last_line["wage"]
    payroll_summary["payroll_key"] = last_line["key"]

    ev = contract_summary.join(permit_summary, how="outer").join(payroll_summary, how="outer")
    for col in ("contract_any", "permit_any", "payroll_any"):
        ev[col] = ev[col].fillna(0).astype(int)
    for col in ("contract_current", "permit_current", "payroll_current", "permit_ended"):
        ev[col] = ev[col].astype("boolean").fillna(False).astype(bool)
    ev["current"] = ev["contract_current"] | ev["permit_current"] | ev["payroll_current"]
    ev["current_sources"] = (ev["contract_current"].astype(int) + ev["permit_current"].astype(int)
                             + ev["payroll_current"].astype(int))
    start = ev["contract_start_active"].where(ev["contract_start_active"].notna(),
                                              ev["contract_start_any"])
    start = start.where(start.notna(), ev["payroll_first"])
    ev["started"] = start.where(start.notna(), ev["permit_issue"])
    ev["evidence_wage"] = ev["payroll_wage"].where(ev["payroll_wage"].notna(),
                                                   ev["contract_wage"])
    ev["evidence_wage_source"] = ev["payroll_wage"].notna().map(
        {True: "payroll", False: "contract"})
    filed_sets: dict[str, set[str]] = {}
    pairs = pay[["employer_id", "period"]].dropna(subset=["employer_id"]).drop_duplicates()
    for employer, period in zip(pairs["employer_id"], pairs["period"], strict=True):
        filed_sets.setdefault(str(employer), set()).add(period)
    filed = {e: frozenset(periods) for e, periods in filed_sets.items()}
    codes, width = ev.index.to_numpy(dtype=np.int64), max(len(employers), 1)
    ev.index = pd.MultiIndex.from_arrays(
        [people.take(codes // width), employers.take(codes % width)],
        names=["person_id", "employer_id"])
    ev["_pair"], ev["_person"] = codes, codes // width  # the person's rank: sorted order
    return Facts(as_of=as_of, contracts=c, permits=p, payroll=pay, contributors=contributors,
                 engagements=engagements, evidence=ev.reset_index(), payroll_periods=periods,
                 filed=filed)


def _pair_codes(*frames: pd.DataFrame) -> tuple[list[np.ndarray], pd.Index, pd.Index]:
    """For each frame, the code of each row's (person_id, employer_id): person rank × number
    of employers + employer rank, ranks in sorted order (as a groupby sorts its keys), -1
    where either is missing; and the sorted persons and employers the codes index."""
    person_codes, people = pd.factorize(
        pd.concat([f["person_id"] for f in frames], ignore_index=True), sort=True)
    employer_codes, employers = pd.factorize(
        pd.concat([f["employer_id"] for f in frames], ignore_index=True), sort=True)
    width = max(len(employers), 1)
    codes = np.where((person_codes >= 0) & (employer_codes >= 0),
                     person_codes.astype(np.int64) * width + employer_codes, -1)
    bounds = np.cumsum([len(f) for f in frames])[:-1]
    return list(np.split(codes, bounds)), pd.Index(people), pd.Index(employers)
