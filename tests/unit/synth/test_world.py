"""The synthetic world: contract-conformant files, and a truth that the files really imply.

The central test re-derives every finding from the *written files* with an independent,
literal reading of the rule catalogue in ``feeds.md`` — using the true person of every row
(``records.csv``) instead of identity resolution — and requires it to equal
``findings.jsonl``. That is what makes the truth trustworthy: a planted sign that does not
fire, or a clean person who trips a rule by accident, fails here.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import hijridate
import numpy as np
import pytest

from reconciler.identity.identifiers import DEFAULT_PROFILE, luhn_valid
from reconciler.synth.world import (
    RULES,
    World,
    WorldSpec,
    generate_world,
    luhn_complete,
    mistype,
    write_world,
)

AS_OF = date(2026, 11, 1)
GRACE = 30
ID_COLUMNS = ("national_id", "residence_id", "border_number", "passport_number")
FEED_DIRS = {"contracts": "contracts", "permits": "permits", "payroll": "payroll"}


@dataclass
class Generated:
    world: World
    inbox: Path
    truth: Path


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    root = tmp_path_factory.mktemp("world")
    world = generate_world(WorldSpec(workers=2000, seed=11))
    write_world(world, root / "inbox", root / "truth")
    return Generated(world, root / "inbox", root / "truth")


# --------------------------------------------------------------------------- reading files


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row); line 1 is the header (no field in these files spans lines)."""
    with path.open(encoding="utf-8", newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            yield i + 2, row


def quarantined(truth: Path) -> dict[tuple[str, int], str]:
    return {(r["file"], int(r["line"])): r["reason_kind"]
            for _, r in read_rows(truth / "quarantine.csv")}


def records(truth: Path) -> dict[tuple[str, str], str]:
    return {(r["feed"], r["key"]): r["person"] for _, r in read_rows(truth / "records.csv")}


def truth_findings(truth: Path) -> list[dict[str, Any]]:
    with (truth / "findings.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def parse_dob(text: str) -> date | None:
    """Full birth dates only: ISO or Hijri. A year alone is partial (None)."""
    if re.fullmatch(r"\d{4}", text):
        return None
    if text.startswith("H"):
        y, m, d = (int(x) for x in text[1:].split("-"))
        g = hijridate.Hijri(y, m, d).to_gregorian()
        return date(g.year, g.month, g.day)
    return date.fromisoformat(text)


def valid_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", text))


def valid_dob(text: str) -> bool:
    if re.fullmatch(r"\d{4}", text):
        return True
    if re.fullmatch(r"H\d{4}-\d{2}-\d{2}", text):
        try:
            parse_dob(text)
        except (ValueError, OverflowError):
            return False
        return True
    return valid_date(text)


REQUIRED = {
    "contracts": ("contract_id", "employer_id", "nationality", "name_en", "date_of_birth",
                  "start_date", "status", "basic_wage", "updated_at"),
    "permits": ("residence_id", "nationality", "name_en", "date_of_birth", "sponsor_id",
                "issue_date", "expiry_date", "status", "updated_at"),
    "payroll": ("employer_id", "period", "name_en", "basic_wage"),
}
DATES = {"contracts": ("start_date", "end_date"), "permits": ("issue_date", "expiry_date"),
         "payroll": ("paid_on",)}
AMOUNTS = {"contracts": ("basic_wage", "housing_allowance"), "permits": (),
           "payroll": ("basic_wage", "housing_allowance", "other_allowances")}


def violations(feed: str, row: dict[str, str]) -> set[str]:
    """Every way ``row`` breaks the contract, as quarantine reason kinds."""
    out: set[str] = set()
    if not any(row.get(c) for c in ID_COLUMNS):
        out.add("no_identifier")
    for c in REQUIRED[feed]:
        if not row[c]:
            out.add("missing_required")
    for c in DATES[feed]:
        if row[c] and not valid_date(row[c]):
            out.add("impossible_date")
    if "date_of_birth" in row and row["date_of_birth"] and not valid_dob(row["date_of_birth"]):
        out.add("impossible_date")
    if feed == "payroll" and row["period"]:
        m = re.fullmatch(r"(\d{4})-(\d{2})", row["period"])
        if not m or not 1 <= int(m.group(2)) <= 12:
            out.add("impossible_date")
    for c in AMOUNTS[feed]:
        if row[c] and float(row[c]) < 0:
            out.add("negative_amount")
    return out


# --------------------------------------------------------------------------- the oracle


@dataclass
class Evidence:
    contracts: list[dict[str, str]] = field(default_factory=list)
    permits: list[dict[str, str]] = field(default_factory=list)
    payroll: list[dict[str, str]] = field(default_factory=list)


def payroll_key(row: dict[str, str]) -> str:
    first = next(row[c] for c in ID_COLUMNS if row[c])
    return f"{row['employer_id']}|{row['period']}|{first}"


def money(row: dict[str, str], *cols: str) -> float:
    return sum(float(row[c]) for c in cols if row[c])


def oracle(inbox: Path, truth: Path, period_day: str = "first",
           permit_starts: bool = False) -> set[tuple[str, str, str | None]]:
    """Findings (rule, person, employer) the contract implies for the written world.

    ``period_day`` and ``permit_starts`` switch to other readings of where the contract is
    loose (a payroll period as its last day; permit issue dates as a start of employment
    for late_registration): the generated truth must not depend on them.
    """
    skip = quarantined(truth)
    rec = records(truth)
    newest: dict[str, dict[tuple[str, str], dict[str, str]]] = {"contracts": {}, "permits": {}}
    pay: dict[str, dict[str, str]] = {}
    for feed, key_col in (("contracts", "contract_id"), ("permits", "residence_id"),
                          ("payroll", "")):
        for path in sorted((inbox / FEED_DIRS[feed]).glob("*.csv")):
            rel = f"{FEED_DIRS[feed]}/{path.name}"
            for line, row in read_rows(path):
                if (rel, line) in skip:
                    continue
                if feed == "payroll":
                    key = payroll_key(row)
                    row["_person"] = rec[("payroll", key)]
                    pay[key] = row
                    continue
                row["_person"] = rec[(feed, row[key_col])]
                k = (row[key_col], row["_person"])
                old = newest[feed].get(k)
                if old is None or row["updated_at"] > old["updated_at"]:
                    newest[feed][k] = row
    contributors = {r["contributor_id"]: r for _, r in
                    read_rows(inbox / "registry" / "contributors.csv")}
    for kid, r in contributors.items():
        r["_person"] = rec[("registry", kid)]
    engagements = [r for _, r in read_rows(inbox / "registry" / "engagements.csv")]
    for r in engagements:
        r["_person"] = contributors[r["contributor_id"]]["_person"]

    ev: dict[tuple[str, str], Evidence] = defaultdict(Evidence)
    for r in newest["contracts"].values():
        ev[(r["_person"], r["employer_id"])].contracts.append(r)
    for r in newest["permits"].values():
        ev[(r["_person"], r["sponsor_id"])].permits.append(r)
    for r in pay.values():
        ev[(r["_person"], r["employer_id"])].payroll.append(r)
    periods = sorted({r["period"] for r in pay.values()})
    newest_period, last_two = periods[-1], periods[-2:]
    filed: dict[str, set[str]] = defaultdict(set)
    for r in pay.values():
        filed[r["employer_id"]].add(r["period"])

    def period_date(p: str) -> date:
        first = date.fromisoformat(p + "-01")
        if period_day == "first":
            return first
        return (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)

    def current(e: Evidence) -> bool:
        return (any(c["status"] == "ACTIVE" and date.fromisoformat(c["start_date"]) <= AS_OF
                    for c in e.contracts)
                or any(p["status"] == "VALID" for p in e.permits)
                or any(r["period"] == newest_period for r in e.payroll))

    def started(e: Evidence) -> date | None:
        if e.contracts:
            return min(date.fromisoformat(c["start_date"]) for c in e.contracts
                       if c["status"] == "ACTIVE") if any(
                c["status"] == "ACTIVE" for c in e.contracts) else None
        if e.payroll:
            return period_date(min(r["period"] for r in e.payroll))
        if e.permits:
            return min(date.fromisoformat(p["issue_date"]) for p in e.permits)
        return None

    found: set[tuple[str, str, str | None]] = set()
    active = [g for g in engagements if g["status"] == "ACTIVE"]
    active_pairs = {(g["_person"], g["employer_id"]) for g in active}
    working: dict[str, set[str]] = defaultdict(set)
    for (person, emp), e in ev.items():
        if current(e):
            working[person].add(emp)
    # wrong_employer, and what it replaces
    replaced: set[tuple[str, str, str | None]] = set()
    for g in active:
        person, a = g["_person"], g["employer_id"]
        if a not in working[person] and working[person] - {a}:
            for b in working[person] - {a}:
                found.add(("wrong_employer", person, b))
                replaced.add(("missing_registration", person, b))
            replaced.add(("stale_engagement", person, a))
            replaced.add(("ghost_registration", person, a))
    # missing_registration
    for (person, emp), e in ev.items():
        s = started(e)
        if current(e) and s is not None and s < AS_OF - timedelta(days=GRACE) \
                and (person, emp) not in active_pairs:
            found.add(("missing_registration", person, emp))
    # late_registration: every engagement, any status
    for g in engagements:
        e = ev.get((g["_person"], g["employer_id"]), Evidence())
        starts = [date.fromisoformat(g["start_date"])]
        starts += [date.fromisoformat(c["start_date"]) for c in e.contracts]
        starts += [period_date(r["period"]) for r in e.payroll]
        if permit_starts:
            starts += [date.fromisoformat(p["issue_date"]) for p in e.permits]
        if (date.fromisoformat(g["registered_on"]) - min(starts)).days > GRACE:
            found.add(("late_registration", g["_person"], g["employer_id"]))
    for g in active:
        person, emp = g["_person"], g["employer_id"]
        e = ev.get((person, emp), Evidence())
        # wage_underdeclared: latest payroll line, else the ACTIVE contract
        wage = None
        if e.payroll:
            latest = max(e.payroll, key=lambda r: r["period"])
            wage = money(latest, "basic_wage", "housing_allowance")
        else:
            act = [c for c in e.contracts if c["status"] == "ACTIVE"]
            if act:
                wage = money(max(act, key=lambda c: c["updated_at"]), "basic_wage",
                             "housing_allowance")
        if wage is not None and float(g["contributory_wage"]) < 0.95 * wage:
            found.add(("wage_underdeclared", person, emp))
        # ghost_registration
        registered = date.fromisoformat(g["registered_on"])
        ghost = (registered < AS_OF - timedelta(days=GRACE)
                 and not e.contracts and not e.permits and not e.payroll)
        if ghost:
            found.add(("ghost_registration", person, emp))
        # stale_engagement
        ended = (any(c["status"] == "TERMINATED" and c["end_date"]
                     and date.fromisoformat(c["end_date"]) < AS_OF - timedelta(days=30)
                     for c in e.contracts)
                 or any(p["status"] in ("CANCELLED", "FINAL_EXIT") for p in e.permits)
                 or (all(p in filed[emp] for p in last_two)
                     and not any(r["period"] in last_two for r in e.payroll)))
        if ended and not current(e) and not ghost:
            found.add(("stale_engagement", person, emp))
    # identity_mismatch: against values two partner feeds agree on
    employers_of: dict[str, list[str]] = defaultdict(list)
    for person, emp in ev:
        employers_of[person].append(emp)
    by_person: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in contributors.values():
        by_person[r["_person"]].append(r)
    for person, regs in by_person.items():
        per_feed: dict[str, dict[str, set[Any]]] = {"contracts": defaultdict(set),
                                                    "permits": defaultdict(set)}
        emps: set[str] = set()
        for emp in employers_of[person]:
            e = ev[(person, emp)]
            if current(e):
                emps.add(emp)
            for feed, rows in (("contracts", e.contracts), ("permits", e.permits)):
                for r in rows:
                    d = parse_dob(r["date_of_birth"])
                    if d:
                        per_feed[feed]["dob"].add(d)
                    per_feed[feed]["nat"].add(r["nationality"])
                    if r["sex"]:
                        per_feed[feed]["sex"].add(r["sex"])
        for attr, col in (("dob", "date_of_birth"), ("nat", "nationality"), ("sex", "sex")):
            agreed = per_feed["contracts"][attr] & per_feed["permits"][attr]
            for reg in regs:
                value: Any = parse_dob(reg[col]) if attr == "dob" else reg[col]
                if value is not None and agreed and value not in agreed:
                    assert len(emps) <= 1
                    found.add(("identity_mismatch", person, next(iter(emps), None)))
        if len(regs) >= 2:
            found.add(("duplicate_contributor", person, None))
    return found - replaced


# --------------------------------------------------------------------------- tests


def test_every_rule_is_planted(generated: Generated) -> None:
    found = truth_findings(generated.truth)
    counts = {rule: sum(f["rule"] == rule for f in found) for rule in RULES}
    assert all(counts[r] >= 5 for r in RULES), counts
    assert all(f["rule"] in RULES for f in found)
    assert all(f["employer_id"] is None for f in found if f["rule"] == "duplicate_contributor")
    assert all(f["employer_id"] for f in found if f["rule"] != "duplicate_contributor")
    mr = [f for f in found if f["rule"] == "missing_registration"]
    assert any(f["auto_registrable"] for f in mr) and not all(f["auto_registrable"] for f in mr)
    assert not any(f["auto_registrable"] for f in found if f["rule"] != "missing_registration")
    dup = [f for f in found if f["rule"] == "duplicate_contributor"]
    assert all(len(f["identifiers"]["contributor_id"]) == 2 for f in dup)


def test_truth_equals_what_the_files_imply(generated: Generated) -> None:
    expected = {(f["rule"], f["person"], f["employer_id"])
                for f in truth_findings(generated.truth)}
    got = oracle(generated.inbox, generated.truth)
    assert sorted(got - expected) == [], "fires without being planted"
    assert sorted(expected - got) == [], "planted but does not fire"
    # other readings of the loose spots of the contract change nothing
    assert oracle(generated.inbox, generated.truth, period_day="last") == got
    assert oracle(generated.inbox, generated.truth, permit_starts=True) == got


def test_one_finding_per_rule_person_employer(generated: Generated) -> None:
    found = truth_findings(generated.truth)
    keys = [(f["rule"], f["person"], f["employer_id"]) for f in found]
    assert len(keys) == len(set(keys))


def test_malformed_rows_really_break_the_contract(generated: Generated) -> None:
    skip = quarantined(generated.truth)
    assert {k[0].split("/")[0] for k in skip} == {"contracts", "permits", "payroll"}
    assert set(skip.values()) == {"missing_required", "impossible_date", "negative_amount",
                                  "no_identifier"}
    seen = 0
    for feed, folder in FEED_DIRS.items():
        for path in sorted((generated.inbox / folder).glob("*.csv")):
            rel = f"{folder}/{path.name}"
            for line, row in read_rows(path):
                broken = violations(feed, row)
                if (rel, line) in skip:
                    seen += 1
                    assert skip[(rel, line)] in broken, (rel, line, row)
                else:
                    assert not broken, (rel, line, row, broken)
    assert seen == len(skip)


def test_identifiers_pass_or_fail_luhn_as_intended(generated: Generated) -> None:
    mistyped = {r["value"]: r for _, r in read_rows(generated.truth / "mistyped.csv")}
    assert len(mistyped) >= 5
    assert all(not luhn_valid(v) and luhn_valid(r["true_value"]) for v, r in mistyped.items())
    prefix = {"national_id": "1", "residence_id": "2", "border_number": "34"}
    used: set[str] = set()
    for path in sorted(generated.inbox.glob("*/*.csv")):
        if path.parent.name == "employers":
            continue
        for _, row in read_rows(path):
            for col, first in prefix.items():
                v = row.get(col, "")
                if not v:
                    continue
                assert len(v) == 10 and v[0] in first, (path.name, col, v)
                if v in mistyped:
                    used.add(v)
                    assert not DEFAULT_PROFILE.is_valid(col, v)
                else:
                    assert DEFAULT_PROFILE.is_valid(col, v), (path.name, col, v)
            pp = row.get("passport_number", "")
            assert not pp or re.fullmatch(r"[A-Z]{2}\d{7}", pp), pp
    assert used == set(mistyped)
    for _, row in read_rows(generated.inbox / "employers" / "employers.csv"):
        assert re.fullmatch(r"7\d{9}", row["employer_id"])


def test_vectorised_luhn_matches_the_profile() -> None:
    rng = np.random.default_rng(0)
    bodies = rng.integers(100_000_000, 500_000_000, 500)
    full = luhn_complete(bodies)
    for b, f in zip(bodies.tolist(), full.tolist(), strict=True):
        assert DEFAULT_PROFILE.make("residence_id", str(b)) == str(f)
    assert not any(luhn_valid(str(v)) for v in mistype(full, rng).tolist())


def test_lookalikes(generated: Generated) -> None:
    w = generated.world
    pairs = w.lookalike_pairs
    assert len(pairs) >= 5
    pc = w.persons
    truth_persons = {f["person"] for f in truth_findings(generated.truth)}
    rec = records(generated.truth)
    in_registry = {p for (feed, _), p in rec.items() if feed == "registry"}
    for a, b in pairs.tolist():
        assert pc["residence_id"][a] != pc["residence_id"][b]
        assert pc["nationality"][a] == pc["nationality"][b]
        assert pc["dob"][a] == pc["dob"][b]
        assert str(pc["dob"][a]).endswith("-01-01")
        assert (pc["_g"][a], pc["_m"][a], pc["_f"][a]) == (pc["_g"][b], pc["_m"][b], pc["_f"][b])
        pa, pb = f"P{a + 1:07d}", f"P{b + 1:07d}"
        assert pa in in_registry and pa not in truth_persons  # the registered twin: clean
        if pb in truth_persons:  # the unregistered look-alike: a true missing registration
            assert pb not in in_registry
        else:
            assert pb in in_registry
    assert any(f"P{b + 1:07d}" in truth_persons for _, b in pairs.tolist())
    assert any(f"P{b + 1:07d}" not in truth_persons for _, b in pairs.tolist())


def test_truth_persons_and_rows_are_recorded(generated: Generated) -> None:
    rec = records(generated.truth)
    people = set(rec.values())
    for f in truth_findings(generated.truth):
        assert f["person"] in people
        ids = [v for vs in f["identifiers"].values() for v in vs]
        assert ids
    skip = quarantined(generated.truth)
    for feed, folder in FEED_DIRS.items():
        for path in sorted((generated.inbox / folder).glob("*.csv")):
            for line, row in read_rows(path):
                if (f"{folder}/{path.name}", line) in skip:
                    continue
                key = {"contracts": row.get("contract_id", ""),
                       "permits": row.get("residence_id", "")}.get(feed) or payroll_key(row)
                assert (feed, key) in rec


def test_noise_is_present(generated: Generated) -> None:
    inbox = generated.inbox
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(inbox.glob("*/*.csv")))
    assert re.search(r",H14\d\d-\d\d-\d\d,", text)  # Hijri birth dates
    assert re.search(r",(19|20)\d\d,(M|F|),", text)  # year-only birth dates
    assert re.search(r"[\u0600-\u06FF]", text)  # Arabic script
    assert "Md." in text or "MD." in text
    files = sorted(p.name for p in inbox.glob("*/*.csv"))
    assert "contracts-2026-10.csv" in files and "contracts-2026-11.csv" in files
    assert [p.name for p in sorted((inbox / "payroll").glob("*.csv"))] == [
        "payroll-2026-08.csv", "payroll-2026-09.csv", "payroll-2026-10.csv"]
    # re-delivered identical rows and newer versions of the same contract
    lines10 = set((inbox / "contracts" / "contracts-2026-10.csv").read_text().splitlines()[1:])
    lines11 = (inbox / "contracts" / "contracts-2026-11.csv").read_text().splitlines()[1:]
    assert any(line in lines10 for line in lines11)
    ids10 = {line.split(",")[0] for line in lines10}
    assert any(line.split(",")[0] in ids10 and line not in lines10 for line in lines11)
    # border numbers used before the permit: a permit row carries both numbers
    permits = [r for _, r in read_rows(inbox / "permits" / "permits-2026-10.csv")]
    assert any(r["border_number"] and r["residence_id"] for r in permits)
    # some employers file no payroll at all
    payers = {r["employer_id"] for p in sorted((inbox / "payroll").glob("*.csv"))
              for _, r in read_rows(p)}
    employers = {r["employer_id"] for _, r in read_rows(inbox / "employers" / "employers.csv")}
    assert employers - payers
    summary = json.loads((generated.truth / "summary.json").read_text())
    assert summary["noise"]["renewed_passport"] > 0
    assert summary["noise"]["payroll_passport_only"] > 0


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    spec = WorldSpec(workers=600, seed=5)
    for name in ("a", "b"):
        write_world(generate_world(spec), tmp_path / name / "inbox", tmp_path / name / "truth")
    write_world(generate_world(WorldSpec(workers=600, seed=6)), tmp_path / "c" / "inbox",
                tmp_path / "c" / "truth")
    a, b, c = (_digest(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a)


def test_rows_link_to_their_person_through_valid_identifiers(generated: Generated) -> None:
    """Noise never cuts a person in two: through valid identifiers alone, every person's rows
    form one group holding nobody else. The only exception is a payroll line whose sole
    identifier is mistyped — left for resolution on the other fields (employer, name)."""
    rec = records(generated.truth)
    skip = quarantined(generated.truth)
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    row_person: list[tuple[str, str]] = []  # (a node of the row, person)
    orphans = 0
    sources = [("contracts", p) for p in sorted((generated.inbox / "contracts").glob("*.csv"))]
    sources += [("permits", p) for p in sorted((generated.inbox / "permits").glob("*.csv"))]
    sources += [("payroll", p) for p in sorted((generated.inbox / "payroll").glob("*.csv"))]
    sources += [("registry", generated.inbox / "registry" / "contributors.csv")]
    for feed, path in sources:
        rel = f"{path.parent.name}/{path.name}"
        for line, row in read_rows(path):
            if (rel, line) in skip:
                continue
            key = {"contracts": row.get("contract_id"), "permits": row.get("residence_id"),
                   "registry": row.get("contributor_id")}.get(feed) or payroll_key(row)
            person = rec[(feed, key)]
            nodes = [f"{c}:{row[c]}" for c in ID_COLUMNS if row.get(c) and (
                c == "passport_number" or DEFAULT_PROFILE.is_valid(c, row[c]))]
            if not nodes:
                assert feed == "payroll"  # a mistyped number alone
                orphans += 1
                continue
            for n in nodes[1:]:
                parent[find(n)] = find(nodes[0])
            row_person.append((nodes[0], person))
    groups: dict[str, set[str]] = defaultdict(set)
    person_groups: dict[str, set[str]] = defaultdict(set)
    for node, person in row_person:
        groups[find(node)].add(person)
        person_groups[person].add(find(node))
    assert all(len(ps) == 1 for ps in groups.values())
    assert all(len(gs) == 1 for gs in person_groups.values()), [
        p for p, gs in person_groups.items() if len(gs) > 1][:5]
    assert orphans < 0.01 * len(row_person)
