"""What the partners and the registry say, per person and employer, ready for the checks.

:func:`build_facts` joins every current record to its person and summarises, for each
(person, employer) pair, the evidence the contract's rule catalogue speaks of: *current
evidence at E*, *employment started*, the evidence wage, endings. The checks read these
tables and never touch the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

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
    payroll_periods: list[str]  # every period present in the payroll feed, newest first
    filed: dict[str, frozenset[str]]  # employer -> periods it filed payroll for


def _period_start(period: pd.Series) -> pd.Series:
    return pd.to_datetime(period + "-01", errors="coerce")


def _dates(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """datetime64 columns: min/max per group run in C, not per Python object (50x faster).
    The checks read them back as ``datetime.date`` through ``checks._d``."""
    frame = frame.copy()
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
    pay = payroll.copy()
    pay["wage"] = pay["basic_wage"].fillna(0) + pay["housing_allowance"].fillna(0)
    pay["current"] = pay["period"] == newest
    pay["period_start"] = _period_start(pay["period"])
    keys = ["person_id", "employer_id"]

    active = c[c["status"] == "ACTIVE"]
    latest_active = active.sort_values("updated_at").groupby(keys).tail(1).set_index(keys)
    contract_summary = c.groupby(keys).agg(
        contract_any=("key", "size"),
        contract_current=("current", "any"),
        contract_start_any=("start_date", "min"),
    )
    contract_summary["contract_start_active"] = active.groupby(keys)["start_date"].min()
    contract_summary["contract_wage"] = latest_active["wage"]
    contract_summary["contract_key"] = latest_active["key"]
    terminated = c[(c["status"] == "TERMINATED") & c["end_date"].notna()]
    contract_summary["terminated_end"] = terminated.groupby(keys)["end_date"].max()

    permit_summary = p.groupby(keys).agg(
        permit_any=("key", "size"),
        permit_current=("current", "any"),
        permit_issue=("issue_date", "min"),
    )
    ended = p[p["status"].isin(["CANCELLED", "FINAL_EXIT"])]
    permit_summary["permit_ended"] = ended.groupby(keys)["key"].size() > 0

    pay_sorted = pay.sort_values("period")
    payroll_summary = pay_sorted.groupby(keys).agg(
        payroll_any=("key", "size"),
        payroll_current=("current", "any"),
        payroll_first=("period_start", "min"),
    )
    last_line = pay_sorted.groupby(keys).tail(1).set_index(keys)
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
    filed = {str(e): frozenset(s) for e, s in pay.groupby("employer_id")["period"]}
    return Facts(as_of=as_of, contracts=c, permits=p, payroll=pay, contributors=contributors,
                 engagements=engagements, evidence=ev.reset_index(), payroll_periods=periods,
                 filed=filed)
