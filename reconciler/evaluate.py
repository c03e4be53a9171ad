"""Score exported findings against a synthetic world's ground truth.

``evaluate(findings, truth_dir)`` takes findings in the contract's export format
(``reconciler findings export --format jsonl``, see ``shared/contracts/feeds.md``) and the
truth directory written by :func:`reconciler.synth.world.write_world`.

Matching, per rule:

* Findings whose ``status`` is ``dismissed`` are left out entirely: an officer already
  rejected them, so they are neither credit nor blame.
* A finding matches a truth line when the rule and ``employer_id`` are equal (both null for
  ``duplicate_contributor``) and **any** identifier of its ``worker`` — ``contributor_id``,
  every ``contributor_ids`` entry, ``national_id``, ``residence_id``, ``border_number``,
  ``passport_number`` — is among the identifiers of the truth line's person.
* Each truth line is matched by at most one finding and each finding matches at most one
  truth line (a maximum bipartite matching, so the count does not depend on the order of
  the findings). Unmatched findings are false positives — including a second finding on an
  already matched truth line; unmatched truth lines are false negatives.

Auto-registration precision: among the (non-dismissed) findings whose ``action`` is
``auto_register``, the share that register a person who truly is missing a registration at
that employer — i.e. that match a truth ``missing_registration`` line (whatever its
``auto_registrable`` flag: a correct registration is what matters, not whether the truth
deemed it safe), each truth line justifying at most one registration (registering the same
person twice creates a duplicate contributor), and whose worker carries no identifier that
belongs to a *different* person (``identifiers.csv``; such a registration merges two people
into one record). With no auto-registration at all the precision is 1.0 (nothing wrong was
done).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.synth.world import RULES  # the catalogue the worlds plant

_WORKER_ID_FIELDS = ("contributor_id", "national_id", "residence_id", "border_number",
                     "passport_number")


@dataclass
class RuleScore:
    rule: str
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        if self.tp + self.fp == 0:
            return 1.0 if self.fn == 0 else 0.0
        return self.tp / (self.tp + self.fp)

    @property
    def recall(self) -> float:
        if self.tp + self.fn == 0:
            return 1.0 if self.fp == 0 else 0.0
        return self.tp / (self.tp + self.fn)

    @property
    def f1(self) -> float:
        # 2PR/(P+R) written on counts: defined everywhere except the all-zero case
        denominator = 2 * self.tp + self.fp + self.fn
        return 1.0 if denominator == 0 else 2 * self.tp / denominator


@dataclass
class Evaluation:
    rules: dict[str, RuleScore]
    macro_f1: float
    auto_register_precision: float
    auto_register_count: int
    auto_register_correct: int = 0
    dismissed_ignored: int = 0
    unknown_rules: dict[str, int] = field(default_factory=dict)

    def format_table(self) -> str:
        lines = [f"{'rule':<24}{'tp':>7}{'fp':>7}{'fn':>7}{'precision':>11}{'recall':>8}"
                 f"{'f1':>7}"]
        for name, s in self.rules.items():
            lines.append(f"{name:<24}{s.tp:>7}{s.fp:>7}{s.fn:>7}{s.precision:>11.3f}"
                         f"{s.recall:>8.3f}{s.f1:>7.3f}")
        lines.append(f"macro F1 over the {len(RULES)} catalogue rules: {self.macro_f1:.3f}")
        lines.append(f"auto-registrations: {self.auto_register_count}, correct "
                     f"{self.auto_register_correct}, precision "
                     f"{self.auto_register_precision:.3f}")
        if self.dismissed_ignored:
            lines.append(f"dismissed findings ignored: {self.dismissed_ignored}")
        if self.unknown_rules:
            lines.append(f"findings of rules outside the catalogue (all FP): "
                         f"{dict(sorted(self.unknown_rules.items()))}")
        return "\n".join(lines)


@dataclass
class _Truth:
    rule: str
    employer_id: str | None
    person: str
    ids: frozenset[str]
    auto_registrable: bool


def _norm(value: object) -> str | None:
    """Identifiers compare without case, spaces or separators (as the resolver cleans them)."""
    if value is None:
        return None
    text = "".join(ch for ch in str(value) if ch.isalnum()).upper()
    return text or None


def _employer(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def worker_identifiers(finding: Mapping[str, Any]) -> frozenset[str]:
    """Every identifier a finding's worker carries, contributor ids included."""
    worker = finding.get("worker") or {}
    values: list[object] = [worker.get(k) for k in _WORKER_ID_FIELDS]
    values += list(worker.get("contributor_ids") or [])
    return frozenset(v for v in (_norm(x) for x in values) if v)


def load_truth(truth_dir: Path) -> list[_Truth]:
    out: list[_Truth] = []
    with (Path(truth_dir) / "findings.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            rec = json.loads(line)
            ids = frozenset(v for vs in rec["identifiers"].values() for v in
                            (_norm(x) for x in vs) if v)
            out.append(_Truth(rec["rule"], _employer(rec.get("employer_id")), rec["person"],
                              ids, bool(rec.get("auto_registrable", False))))
    return out


def _index(truth: Sequence[_Truth]) -> dict[tuple[str, str | None, str], list[int]]:
    idx: dict[tuple[str, str | None, str], list[int]] = {}
    for i, t in enumerate(truth):
        for v in t.ids:
            idx.setdefault((t.rule, t.employer_id, v), []).append(i)
    return idx


def _match(candidates: Sequence[Sequence[int]]) -> list[int | None]:
    """Maximum bipartite matching (Kuhn): finding i → truth line, or None."""
    owner: dict[int, int] = {}  # truth line → finding

    def augment(i: int, seen: set[int]) -> bool:
        for t in candidates[i]:
            if t in seen:
                continue
            seen.add(t)
            if t not in owner or augment(owner[t], seen):
                owner[t] = i
                return True
        return False

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for i in range(len(candidates)):
            if candidates[i]:
                augment(i, set())
    finally:
        sys.setrecursionlimit(limit)
    result: list[int | None] = [None] * len(candidates)
    for t, i in owner.items():
        result[i] = t
    return result


def _candidates(rule: str, employer: str | None, ids: Iterable[str],
                idx: Mapping[tuple[str, str | None, str], list[int]]) -> list[int]:
    found: set[int] = set()
    for v in ids:
        found.update(idx.get((rule, employer, v), ()))
    return sorted(found)


def _owners(truth_dir: Path, values: set[str]) -> dict[str, set[str]] | None:
    """identifier → persons, for the given values only (None: the truth has no table)."""
    path = Path(truth_dir) / "identifiers.csv"
    if not path.exists():
        return None
    out: dict[str, set[str]] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        vi, pi = header.index("value"), header.index("person")
        for row in reader:  # millions of rows, written clean by synth: a cheap upper()
            v = row[vi].upper()
            if v in values:
                out.setdefault(v, set()).add(row[pi])
    return out


def evaluate(findings: Iterable[Mapping[str, Any]], truth_dir: Path) -> Evaluation:
    truth = load_truth(truth_dir)
    idx = _index(truth)
    kept: list[tuple[str, str | None, frozenset[str], str]] = []
    dismissed = 0
    for f in findings:
        if str(f.get("status", "")).lower() == "dismissed":
            dismissed += 1
            continue
        kept.append((str(f.get("rule", "")), _employer(f.get("employer_id")),
                     worker_identifiers(f), str(f.get("action", ""))))

    cands = [_candidates(rule, emp, ids, idx) for rule, emp, ids, _ in kept]
    matched = _match(cands)
    scores = {rule: RuleScore(rule) for rule in RULES}
    unknown: dict[str, int] = {}
    hit: set[int] = set()
    for (rule, _, _, _), t in zip(kept, matched, strict=True):
        score = scores.setdefault(rule, RuleScore(rule))
        if rule not in RULES:
            unknown[rule] = unknown.get(rule, 0) + 1
        if t is None:
            score.fp += 1
        else:
            score.tp += 1
            hit.add(t)
    for i, line in enumerate(truth):
        if i not in hit:
            scores.setdefault(line.rule, RuleScore(line.rule)).fn += 1
    macro = sum(scores[r].f1 for r in RULES) / len(RULES)

    # auto-registrations: a separate matching against every true missing registration
    autos = [k for k in kept if k[3] == "auto_register"]
    auto_cands = [_candidates("missing_registration", emp, ids, idx) for _, emp, ids, _ in autos]
    auto_matched = _match(auto_cands)
    owners = _owners(truth_dir, {v for _, _, ids, _ in autos for v in ids}) if autos else None
    correct = 0
    for (_, _, ids, _), t in zip(autos, auto_matched, strict=True):
        if t is None:
            continue
        if owners is not None:
            persons = set().union(*(owners.get(v, set()) for v in ids))
            if persons - {truth[t].person}:
                continue  # merged with somebody else's record
        correct += 1
    precision = correct / len(autos) if autos else 1.0
    return Evaluation(rules=scores, macro_f1=macro, auto_register_precision=precision,
                      auto_register_count=len(autos), auto_register_correct=correct,
                      dismissed_ignored=dismissed, unknown_rules=unknown)


def read_findings(path: Path) -> list[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reconciler.evaluate",
        description="Score a findings export (jsonl) against a synthetic world's truth.")
    parser.add_argument("findings", type=Path, help="findings export, one JSON object a line")
    parser.add_argument("truth_dir", type=Path, help="truth directory written by synth")
    args = parser.parse_args(argv)
    print(evaluate(read_findings(args.findings), args.truth_dir).format_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
