"""The scorer, on a hand-made truth where every expected number is worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.evaluate import RULES, RuleScore, evaluate, main

E1, E2 = "7000000017", "7000000025"


def _ids(**kinds: list[str]) -> dict[str, list[str]]:
    base: dict[str, list[str]] = {k: [] for k in ("national_id", "residence_id",
                                                  "border_number", "passport_number",
                                                  "contributor_id")}
    base.update(kinds)
    return base


TRUTH: list[dict[str, Any]] = [
    # T0: P1 missing at E1 (safe to auto-register)
    {"rule": "missing_registration", "employer_id": E1, "person": "P0000001",
     "identifiers": _ids(residence_id=["2000000001"], passport_number=["AA1111111"]),
     "auto_registrable": True},
    # T1: P2 missing at E2 (review case)
    {"rule": "missing_registration", "employer_id": E2, "person": "P0000002",
     "identifiers": _ids(residence_id=["2000000002"], contributor_id=["K000000002"]),
     "auto_registrable": False},
    # T2: P3 under-declared at E1
    {"rule": "wage_underdeclared", "employer_id": E1, "person": "P0000003",
     "identifiers": _ids(contributor_id=["K000000003"], passport_number=["BB2222222"]),
     "auto_registrable": False},
    # T3: P4 registered twice; no employer
    {"rule": "duplicate_contributor", "employer_id": None, "person": "P0000004",
     "identifiers": _ids(contributor_id=["K000000041", "K000000042"],
                         residence_id=["2000000004"]),
     "auto_registrable": False},
    # T4: a ghost at E2
    {"rule": "ghost_registration", "employer_id": E2, "person": "P0000005",
     "identifiers": _ids(contributor_id=["K000000005"]), "auto_registrable": False},
    # T5: registered late at E1
    {"rule": "late_registration", "employer_id": E1, "person": "P0000006",
     "identifiers": _ids(national_id=["1000000006"]), "auto_registrable": False},
]


def finding(rule: str, employer: str | None, status: str = "open", action: str = "review",
            **worker: Any) -> dict[str, Any]:
    w: dict[str, Any] = {"contributor_id": None, "contributor_ids": [], "national_id": None,
                         "residence_id": None, "border_number": None,
                         "passport_number": None, "name_en": "X"}
    w.update(worker)
    return {"finding_id": "f", "rule": rule, "employer_id": employer, "status": status,
            "action": action, "worker": w}


FINDINGS = [
    # F1 → T0: same rule, employer, residence id. TP; a correct auto-registration.
    finding("missing_registration", E1, action="auto_register", residence_id="2000000001"),
    # F2 → T0 again: T0 is already taken, so this second finding on it is an FP.
    finding("missing_registration", E1, residence_id="2000000001"),
    # F3: P1's passport but at E2, where only P2 is missing: FP, and a wrong auto-registration.
    finding("missing_registration", E2, action="auto_register", passport_number="AA1111111"),
    # F4 → T2 through a contributor id written in lower case with a space: TP.
    finding("wage_underdeclared", E1, contributor_ids=["k 000000003"]),
    # F5 → T3: a duplicate matches on any of its contributor ids (K...41), the other id
    # (K...99) is unknown and harmless; employer null on both sides. TP.
    finding("duplicate_contributor", None, contributor_ids=["K000000041", "K000000099"]),
    # F6: the same duplicate reported with an employer: employer_id differs from null → FP.
    finding("duplicate_contributor", E1, contributor_id="K000000042"),
    # F7: the ghost T4, but dismissed: ignored, so T4 stays a false negative.
    finding("ghost_registration", E2, status="dismissed", contributor_id="K000000005"),
    # F8: a wrong stale finding, dismissed: ignored, it is no FP.
    finding("stale_engagement", E1, status="dismissed", contributor_id="K000000777"),
    # F9 → T5: resolved is not dismissed, still counts. TP.
    finding("late_registration", E1, status="resolved", national_id="1000000006"),
    # F10: nobody in the truth: FP.
    finding("identity_mismatch", E2, status="in_review", residence_id="2999999999"),
]


def write_truth(root: Path, lines: list[dict[str, Any]],
                identifiers: list[tuple[str, str, str]] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "findings.jsonl").write_text(
        "".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    if identifiers is not None:
        (root / "identifiers.csv").write_text(
            "kind,value,person\n" + "".join(f"{k},{v},{p}\n" for k, v, p in identifiers),
            encoding="utf-8")
    return root


def test_hand_made_truth(tmp_path: Path) -> None:
    ev = evaluate(FINDINGS, write_truth(tmp_path, TRUTH))
    s = ev.rules
    # missing_registration: TP F1; FP F2 (second on T0) and F3 (wrong employer); FN T1
    assert (s["missing_registration"].tp, s["missing_registration"].fp,
            s["missing_registration"].fn) == (1, 2, 1)
    assert s["missing_registration"].precision == pytest.approx(1 / 3)
    assert s["missing_registration"].recall == pytest.approx(1 / 2)
    assert s["missing_registration"].f1 == pytest.approx(2 / (2 + 2 + 1))
    assert (s["wage_underdeclared"].tp, s["wage_underdeclared"].fp) == (1, 0)
    # duplicate_contributor: F5 TP, F6 FP (non-null employer), nothing missed
    assert (s["duplicate_contributor"].tp, s["duplicate_contributor"].fp,
            s["duplicate_contributor"].fn) == (1, 1, 0)
    # ghost: the only finding was dismissed → 0/0/1, everything 0
    assert (s["ghost_registration"].tp, s["ghost_registration"].fp,
            s["ghost_registration"].fn) == (0, 0, 1)
    assert s["ghost_registration"].precision == 0.0 and s["ghost_registration"].f1 == 0.0
    # stale: its only finding was dismissed and nothing was expected → perfect by definition
    assert (s["stale_engagement"].tp, s["stale_engagement"].fp, s["stale_engagement"].fn) == (
        0, 0, 0)
    assert s["stale_engagement"].f1 == 1.0
    assert s["late_registration"].f1 == 1.0
    # identity_mismatch: one FP, nothing expected
    assert (s["identity_mismatch"].fp, s["identity_mismatch"].recall) == (1, 0.0)
    assert s["wrong_employer"].f1 == 1.0  # nothing expected, nothing reported
    f1 = {"missing_registration": 0.4, "late_registration": 1.0, "wage_underdeclared": 1.0,
          "wrong_employer": 1.0, "identity_mismatch": 0.0, "stale_engagement": 1.0,
          "duplicate_contributor": 2 / 3, "ghost_registration": 0.0}
    assert ev.macro_f1 == pytest.approx(sum(f1.values()) / 8)
    # auto-registrations: F1 correct, F3 not (P1 is not missing at E2)
    assert (ev.auto_register_count, ev.auto_register_correct) == (2, 1)
    assert ev.auto_register_precision == pytest.approx(0.5)
    assert ev.dismissed_ignored == 2
    table = ev.format_table()
    assert all(rule in table for rule in RULES) and "macro F1" in table


def test_matching_does_not_depend_on_order(tmp_path: Path) -> None:
    truth: list[dict[str, Any]] = [
        {"rule": "late_registration", "employer_id": E1, "person": "P0000001",
         "identifiers": _ids(residence_id=["2000000001"])},
        {"rule": "late_registration", "employer_id": E1, "person": "P0000007",
         "identifiers": _ids(residence_id=["2000000007"])},
    ]
    root = write_truth(tmp_path, truth)
    # a finding that merged P1 and P7 could take either line; the other finding only P1's:
    # a greedy matcher would score 1 TP + 1 FP in one order, the matching scores 2 TP in both
    merged = finding("late_registration", E1, residence_id="2000000001",
                     contributor_ids=["2000000007"])
    only_p1 = finding("late_registration", E1, residence_id="2000000001")
    for order in ([merged, only_p1], [only_p1, merged]):
        s = evaluate(order, root).rules["late_registration"]
        assert (s.tp, s.fp, s.fn) == (2, 0, 0)


def test_auto_registration_must_not_merge_or_repeat(tmp_path: Path) -> None:
    truth: list[dict[str, Any]] = [
        {"rule": "missing_registration", "employer_id": E1, "person": "P0000001",
         "identifiers": _ids(residence_id=["2000000001"]), "auto_registrable": False},
        {"rule": "missing_registration", "employer_id": E1, "person": "P0000002",
         "identifiers": _ids(residence_id=["2000000002"]), "auto_registrable": True},
    ]
    identifiers = [("residence_id", "2000000001", "P0000001"),
                   ("residence_id", "2000000002", "P0000002"),
                   ("contributor_id", "K000000009", "P0000009")]
    root = write_truth(tmp_path, truth, identifiers)
    found = [
        # P1 registered although the truth judged it a review case: still a true missing
        # registration, so a correct registration
        finding("missing_registration", E1, action="auto_register", residence_id="2000000001"),
        # P2 attached to P9's contributor record: the rule finding is right (TP), the
        # registration merges two people → wrong
        finding("missing_registration", E1, action="auto_register", residence_id="2000000002",
                contributor_id="K000000009"),
        # P1 registered a second time: an FP finding and a wrong registration
        finding("missing_registration", E1, action="auto_register", residence_id="2000000001"),
    ]
    ev = evaluate(found, root)
    s = ev.rules["missing_registration"]
    assert (s.tp, s.fp, s.fn) == (2, 1, 0)
    assert (ev.auto_register_count, ev.auto_register_correct) == (3, 1)
    assert ev.auto_register_precision == pytest.approx(1 / 3)


def test_conventions_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert RuleScore("x").f1 == RuleScore("x").precision == RuleScore("x").recall == 1.0
    assert RuleScore("x", tp=0, fp=0, fn=3).precision == 0.0
    assert RuleScore("x", tp=0, fp=2, fn=0).recall == 0.0
    assert RuleScore("x", tp=3, fp=1, fn=0).f1 == pytest.approx(2 * 0.75 * 1 / 1.75)
    ev = evaluate([], write_truth(tmp_path / "t", []))
    assert ev.macro_f1 == 1.0 and ev.auto_register_precision == 1.0
    root = write_truth(tmp_path / "u", TRUTH)
    export = tmp_path / "findings.jsonl"
    export.write_text("".join(json.dumps(f) + "\n" for f in FINDINGS), encoding="utf-8")
    assert main([str(export), str(root)]) == 0
    assert "missing_registration" in capsys.readouterr().out


def test_a_perfect_export_of_a_synthetic_world_scores_one(tmp_path: Path) -> None:
    from reconciler.synth.world import WorldSpec, generate_world, write_world

    write_world(generate_world(WorldSpec(workers=600, seed=3)), tmp_path / "in", tmp_path / "t")
    perfect = []
    for line in (tmp_path / "t" / "findings.jsonl").read_text(encoding="utf-8").splitlines():
        t = json.loads(line)
        ids = t["identifiers"]
        worker = {k: (ids[k][0] if ids[k] else None) for k in
                  ("national_id", "residence_id", "border_number", "passport_number")}
        worker["contributor_ids"] = ids["contributor_id"]
        auto = t["rule"] == "missing_registration" and t["auto_registrable"]
        perfect.append({"rule": t["rule"], "employer_id": t["employer_id"], "status": "open",
                        "action": "auto_register" if auto else "review", "worker": worker})
    ev = evaluate(perfect, tmp_path / "t")
    assert ev.macro_f1 == 1.0
    assert ev.auto_register_count > 0 and ev.auto_register_precision == 1.0
