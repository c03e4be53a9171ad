"""The sign catalogue on tiny hand-made facts, one situation per test.

Dates are relative to AS_OF = 2026-11-01, grace 30 days; each expected finding is
explained by the comment above it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from reconciler.config import REPO_CONFIG_DIR
from reconciler.rules.catalogue import load_catalogue
from reconciler.rules.checks import CHECKS
from reconciler.rules.engine import evaluate
from reconciler.rules.facts import build_facts

AS_OF = date(2026, 11, 1)
A, B = "7000000017", "7000000025"
CATALOGUE = load_catalogue(REPO_CONFIG_DIR / "rules.yaml")


def contract(person: str, employer: str, start: str, status: str = "ACTIVE",
             end: str | None = None, wage: float = 4000, **identity: Any) -> dict[str, Any]:
    return {"key": f"C-{person}-{employer}-{start}", "person_id": person,
            "employer_id": employer, "status": status, "start_date": date.fromisoformat(start),
            "end_date": date.fromisoformat(end) if end else None, "basic_wage": wage,
            "housing_allowance": wage / 4, "updated_at": pd.Timestamp("2026-01-01", tz="UTC"),
            "date_of_birth": None, "nationality": None, "sex": None, **identity}


def permit(person: str, employer: str, status: str = "VALID", **identity: Any) -> dict[str, Any]:
    return {"key": f"R-{person}-{employer}", "person_id": person, "employer_id": employer,
            "status": status, "issue_date": date(2026, 1, 1), "date_of_birth": None,
            "nationality": None, "sex": None, **identity}


def payroll(person: str, employer: str, period: str, wage: float = 4000) -> dict[str, Any]:
    return {"key": f"{employer}|{period}|{person}", "person_id": person, "employer_id": employer,
            "period": period, "basic_wage": wage, "housing_allowance": wage / 4}


def engagement(person: str, employer: str, start: str, registered: str,
               wage: float = 5000, status: str = "ACTIVE",
               by: str = "employer") -> dict[str, Any]:
    return {"engagement_id": f"G-{person}-{employer}", "contributor_id": f"K-{person}",
            "person_id": person, "employer_id": employer,
            "start_date": date.fromisoformat(start), "end_date": None, "status": status,
            "registered_on": date.fromisoformat(registered), "contributory_wage": wage,
            "registered_by": by}


def contributor(person: str, cid: str | None = None, **identity: Any) -> dict[str, Any]:
    return {"contributor_id": cid or f"K-{person}", "person_id": person,
            "date_of_birth": None, "nationality": None, "sex": None, **identity}


def findings(contracts: list | None = None, permits: list | None = None,
             pay: list | None = None, contributors: list | None = None,
             engagements: list | None = None) -> set[tuple[str, str, str | None]]:
    def frame(rows: list | None, columns: list[str]) -> pd.DataFrame:
        return pd.DataFrame(rows or [], columns=columns) if not rows else pd.DataFrame(rows)

    facts = build_facts(
        AS_OF,
        frame(contracts, list(contract("x", A, "2026-01-01"))),
        frame(permits, list(permit("x", A))),
        frame(pay, list(payroll("x", A, "2026-10"))),
        frame(contributors, list(contributor("x"))),
        frame(engagements, list(engagement("x", A, "2026-01-01", "2026-01-01"))),
    )
    return {(h.rule, h.person_id, h.employer_id) for h in evaluate(CATALOGUE, facts)}


def test_a_correctly_registered_worker_raises_nothing() -> None:
    assert findings([contract("p", A, "2024-01-01")], [permit("p", A)],
                    [payroll("p", A, "2026-10")], [contributor("p")],
                    [engagement("p", A, "2024-01-01", "2024-01-10")]) == set()


def test_missing_only_after_the_grace_period() -> None:
    # started 2026-09-01 (61 days ago) → missing; started 2026-10-15 (17 days) → not yet
    assert findings([contract("p", A, "2026-09-01"), contract("q", A, "2026-10-15")]) == {
        ("missing_registration", "p", A)}


def test_late_registration_counts_from_the_earliest_partner_start() -> None:
    # the engagement says 2026-03-01, but payroll shows the person paid since 2026-01:
    # registered 2026-03-05 is 63 days after 2026-01-01 → late
    assert ("late_registration", "p", A) in findings(
        [contract("p", A, "2026-03-01")], [], [payroll("p", A, "2026-01"),
                                              payroll("p", A, "2026-10")],
        [contributor("p")], [engagement("p", A, "2026-03-01", "2026-03-05")])


def test_wage_underdeclared_uses_payroll_before_the_contract() -> None:
    # payroll 4,000 + 1,000 = 5,000; declared 4,700 is 6% below → fires; 4,800 (4%) does not
    base = dict(contracts=[contract("p", A, "2024-01-01", wage=3000)],
                pay=[payroll("p", A, "2026-10", wage=4000)], contributors=[contributor("p")])
    assert ("wage_underdeclared", "p", A) in findings(
        **base, engagements=[engagement("p", A, "2024-01-01", "2024-01-02", wage=4700)])
    assert ("wage_underdeclared", "p", A) not in findings(
        **base, engagements=[engagement("p", A, "2024-01-01", "2024-01-02", wage=4800)])


def test_wrong_employer_replaces_missing_at_b_and_stale_at_a() -> None:
    # registered at A, whose contract was terminated long ago; works at B since 2025.
    # Without precedence this would be missing at B and stale at A as well.
    got = findings(
        [contract("p", A, "2022-01-01", status="TERMINATED", end="2024-12-31"),
         contract("p", B, "2025-01-01")],
        [permit("p", B)], [payroll("p", B, "2026-10")], [contributor("p")],
        [engagement("p", A, "2022-01-01", "2022-01-05")])
    assert got == {("wrong_employer", "p", B)}


def test_ghost_when_no_feed_knows_the_person_at_the_employer() -> None:
    # registered at A for a year; no contract, permit or payroll of the person with A
    assert findings([], [], [], [contributor("p")],
                    [engagement("p", A, "2025-10-01", "2025-10-02")]) == {
        ("ghost_registration", "p", A)}


def test_stale_when_the_employer_files_payroll_without_the_person() -> None:
    # A filed 2026-09 and 2026-10 for someone else but not for p; p's contract is SUSPENDED
    # (so not current evidence) → stale
    assert findings([contract("p", A, "2024-01-01", status="SUSPENDED")], [],
                    [payroll("q", A, "2026-09"), payroll("q", A, "2026-10")],
                    [contributor("p")],
                    [engagement("p", A, "2024-01-01", "2024-01-02")]) >= {
        ("stale_engagement", "p", A)}


def test_identity_mismatch_needs_two_agreeing_feeds() -> None:
    both = findings([contract("p", A, "2024-01-01", date_of_birth="1990-05-06")],
                    [permit("p", A, date_of_birth="1990-05-06")], [],
                    [contributor("p", date_of_birth="1990-06-05")],
                    [engagement("p", A, "2024-01-01", "2024-01-02")])
    assert ("identity_mismatch", "p", A) in both
    one = findings([contract("p", A, "2024-01-01", date_of_birth="1990-05-06")],
                   [permit("p", A)], [], [contributor("p", date_of_birth="1990-06-05")],
                   [engagement("p", A, "2024-01-01", "2024-01-02")])
    assert ("identity_mismatch", "p", A) not in one
    year_only = findings([contract("p", A, "2024-01-01", date_of_birth="1990-05-06")],
                         [permit("p", A, date_of_birth="1990-05-06")], [],
                         [contributor("p", date_of_birth="1990")],
                         [engagement("p", A, "2024-01-01", "2024-01-02")])
    assert ("identity_mismatch", "p", A) not in year_only


def test_duplicate_contributor_has_no_employer() -> None:
    assert ("duplicate_contributor", "p", None) in findings(
        [], [], [], [contributor("p", "K1"), contributor("p", "K2")], [])


def test_one_finding_per_rule_person_and_employer() -> None:
    # The same person holds two registry records, both registered at A at too low a wage:
    # one wage finding (plus the duplicate), not two.
    facts_engagements = [engagement("p", A, "2024-01-01", "2024-01-02", wage=3000),
                         {**engagement("p", A, "2024-01-01", "2024-01-02", wage=3000),
                          "engagement_id": "G-other", "contributor_id": "K2"}]
    facts = build_facts(AS_OF, pd.DataFrame([contract("p", A, "2024-01-01")]),
                        pd.DataFrame([], columns=list(permit("x", A))),
                        pd.DataFrame([payroll("p", A, "2026-10")]),
                        pd.DataFrame([contributor("p"), contributor("p", "K2")]),
                        pd.DataFrame(facts_engagements))
    hits = [(h.rule, h.person_id, h.employer_id) for h in evaluate(CATALOGUE, facts)]
    assert sorted(hits, key=str) == [("duplicate_contributor", "p", None),
                                     ("wage_underdeclared", "p", A)]


# -- what the checks put in a finding, where the vectorised lookups meet gaps ---------------

PARAMS = {name: sign.params for name, sign in CATALOGUE.signs.items()}


def facts_of(contracts: list | None = None, permits: list | None = None,
             pay: list | None = None, contributors: list | None = None,
             engagements: list | None = None) -> Any:
    def frame(rows: list | None, like: dict[str, Any]) -> pd.DataFrame:
        return pd.DataFrame(rows) if rows else pd.DataFrame([], columns=list(like))

    return build_facts(AS_OF, frame(contracts, contract("x", A, "2026-01-01")),
                       frame(permits, permit("x", A)), frame(pay, payroll("x", A, "2026-10")),
                       frame(contributors, contributor("x")),
                       frame(engagements, engagement("x", A, "2026-01-01", "2026-01-01")))


def run(rule: str, facts: Any) -> list[tuple[str, str | None, dict[str, Any], list]]:
    return [(h.person_id, h.employer_id, h.details, h.evidence)
            for h in CHECKS[rule](facts, PARAMS[rule])]


def test_stale_at_an_employer_with_no_record_of_the_person_names_only_the_payroll() -> None:
    # p is registered at A, where no feed has any record of p (no permit to have ended);
    # A filed 2026-09 and 2026-10 for q only
    facts = facts_of(pay=[payroll("q", A, "2026-09"), payroll("q", A, "2026-10")],
                     contributors=[contributor("p")],
                     engagements=[engagement("p", A, "2024-01-01", "2024-01-02")])
    assert run("stale_engagement", facts) == [("p", A, {
        "reasons": ["payroll filed for 2026-10, 2026-09 without the person"],
        "engagement_id": f"G-p-{A}"}, [("registry", f"G-p-{A}")])]
    assert run("ghost_registration", facts) == [("p", A, {
        "registered_on": "2024-01-02", "engagement_id": f"G-p-{A}"}, [("registry", f"G-p-{A}")])]


def test_stale_names_every_reason_and_current_evidence_prevents_it() -> None:
    facts = facts_of(
        [contract("p", A, "2022-01-01", status="TERMINATED", end="2026-08-31"),
         contract("r", B, "2022-01-01", status="TERMINATED", end="2026-08-31"),
         contract("r", B, "2026-09-01")],
        [permit("p", A, status="CANCELLED")], [],
        [contributor("p"), contributor("r")],
        [engagement("p", A, "2022-01-01", "2022-01-02"),
         engagement("r", B, "2022-01-01", "2022-01-02")])
    assert run("stale_engagement", facts) == [("p", A, {
        "reasons": ["contract terminated on 2026-08-31", "permit cancelled or final exit"],
        "engagement_id": f"G-p-{A}"}, [("registry", f"G-p-{A}")])]


def test_wage_needs_an_evidence_wage_and_names_its_source() -> None:
    facts = facts_of([contract("p", A, "2024-01-01", wage=4000)], [permit("q", B)],
                     [], [contributor("p"), contributor("q")],
                     [engagement("p", A, "2024-01-01", "2024-01-02", wage=3000),
                      engagement("q", B, "2024-01-01", "2024-01-02", wage=10),
                      engagement("s", B, "2024-01-01", "2024-01-02", wage=10)])
    assert run("wage_underdeclared", facts) == [("p", A, {
        "declared": 3000.0, "evidence_wage": 5000.0, "evidence_wage_source": "contract",
        "shortfall": 2000.0, "engagement_id": f"G-p-{A}"}, [("registry", f"G-p-{A}")])]


def test_late_registration_details_and_an_engagement_without_evidence() -> None:
    facts = facts_of([], [], [payroll("p", A, "2026-01"), payroll("p", A, "2026-10")],
                     [contributor("p"), contributor("q")],
                     [engagement("p", A, "2026-03-01", "2026-03-05"),
                      engagement("q", B, "2026-01-01", "2026-03-05")])
    assert run("late_registration", facts) == [
        ("p", A, {"employment_started": "2026-01-01", "registered_on": "2026-03-05",
                  "days_late": 33, "engagement_id": f"G-p-{A}"}, [("registry", f"G-p-{A}")]),
        ("q", B, {"employment_started": "2026-01-01", "registered_on": "2026-03-05",
                  "days_late": 33, "engagement_id": f"G-q-{B}"}, [("registry", f"G-q-{B}")])]


def test_identity_mismatch_names_each_field_and_the_value_stated_last() -> None:
    # both feeds agree on two birth dates for p (contracts state 1990-05-06 first): the
    # registry's 1991-01-02 differs from both, and the later one is named. The finding is at
    # A: as many current sources there as at B, and A sorts first.
    facts = facts_of(
        [contract("p", A, "2024-01-01", date_of_birth="1990-05-06", nationality="IND"),
         contract("p", B, "2024-01-01", date_of_birth="1990-06-05", nationality="IND",
                  sex="M")],
        [permit("p", A, date_of_birth="1990-06-05", nationality="IND", sex="M"),
         permit("p", B, date_of_birth="1990-05-06")],
        [], [contributor("p", date_of_birth="1991-01-02", nationality="PAK", sex="M"),
             contributor("p", "K2", date_of_birth="1990-05-06", nationality="IND", sex="F")],
        [engagement("p", A, "2024-01-01", "2024-01-02")])
    agreed = "contracts,permits"
    assert run("identity_mismatch", facts) == [("p", A, {
        "contributor_id": "K-p", "differences": {
            "date_of_birth": {"registry": "1991-01-02", "partners": "1990-06-05",
                              "sources": agreed},
            "nationality": {"registry": "PAK", "partners": "IND", "sources": agreed}},
        "more": [{"contributor_id": "K2", "differences": {
            "date_of_birth": {"registry": "1990-05-06", "partners": "1990-06-05",
                              "sources": agreed},
            "sex": {"registry": "F", "partners": "M", "sources": agreed}}}]},
        [("registry", "K-p"), ("registry", "K2")])]


def test_day_ordinals_match_the_checks_reading_of_a_date() -> None:
    from reconciler.rules.checks import _NO_DAY, _d, _ordinals

    values = [date(2026, 1, 31), None, float("nan"), pd.Timestamp("2026-02-01 23:59"),
              "2026-01-01", pd.NaT, date(1, 1, 1)]
    want = [d.toordinal() if (d := _d(v)) else _NO_DAY for v in values]
    assert list(_ordinals(pd.Series(values, dtype=object))) == want
    stamps = pd.Series([pd.Timestamp("2026-02-01 23:59", tz="Asia/Riyadh"), pd.NaT])
    assert list(_ordinals(stamps)) == [date(2026, 2, 1).toordinal(), _NO_DAY]
    assert list(_ordinals(pd.to_datetime(pd.Series(["2026-02-01 06:00", None])))) == [
        date(2026, 2, 1).toordinal(), _NO_DAY]
