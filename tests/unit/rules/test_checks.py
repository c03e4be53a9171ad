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
