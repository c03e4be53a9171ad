"""Evaluate the catalogue: run each sign's check, apply precedence, attach evidence."""

from __future__ import annotations

from collections import defaultdict

from reconciler.rules.catalogue import Catalogue
from reconciler.rules.checks import CHECKS, EvidenceRef, Hit
from reconciler.rules.facts import Facts


def evaluate(catalogue: Catalogue, facts: Facts) -> list[Hit]:
    hits: list[Hit] = []
    for name, sign in catalogue.signs.items():
        for hit in CHECKS[sign.check](facts, sign.params):
            hit.rule = name
            hits.append(hit)
    hits = apply_precedence(catalogue, one_per_key(hits))
    attach_evidence(facts, hits)
    return hits


def one_per_key(hits: list[Hit]) -> list[Hit]:
    """One finding per (rule, person, employer): a person registered twice at one employer
    (duplicate contributor records) yields one wage or lateness finding naming both
    engagements, not two findings."""
    merged: dict[tuple[str, str, str | None], Hit] = {}
    for hit in hits:
        key = (hit.rule, hit.person_id, hit.employer_id)
        kept = merged.get(key)
        if kept is None:
            merged[key] = hit
            continue
        kept.details.setdefault("also", []).append(hit.details)
        kept.evidence.extend(e for e in hit.evidence if e not in kept.evidence)
    return list(merged.values())


def apply_precedence(catalogue: Catalogue, hits: list[Hit]) -> list[Hit]:
    """Drop the findings a stronger sign replaces (contract, *Precedence*)."""
    drop: set[tuple[str, str, str | None]] = set()
    for hit in hits:
        rule = catalogue.precedence.get(hit.rule)
        if rule is None:
            continue
        for loser in (*rule.at_working_employer, *rule.same_employer):
            drop.add((loser, hit.person_id, hit.employer_id))
        for loser in rule.at_registered_employer:
            for employer in hit.related_employers:
                drop.add((loser, hit.person_id, employer))
    return [h for h in hits if (h.rule, h.person_id, h.employer_id) not in drop]


def attach_evidence(facts: Facts, hits: list[Hit]) -> None:
    """Every partner record of the person with the finding's employer, plus the registry
    records the check named; for a finding without an employer, all the person's records."""
    wanted_pairs = {(h.person_id, h.employer_id) for h in hits if h.employer_id}
    wanted_persons = {h.person_id for h in hits}
    by_pair: dict[tuple[str, str], list[EvidenceRef]] = defaultdict(list)
    by_person: dict[str, list[EvidenceRef]] = defaultdict(list)
    for feed, frame in (("contracts", facts.contracts), ("permits", facts.permits),
                        ("payroll", facts.payroll)):
        sub = frame[frame["person_id"].isin(wanted_persons)]
        for person, employer, key in zip(sub["person_id"], sub["employer_id"], sub["key"],
                                         strict=True):
            by_person[person].append((feed, str(key)))
            if (person, employer) in wanted_pairs:
                by_pair[(person, employer)].append((feed, str(key)))
    contributors = facts.contributors[facts.contributors["person_id"].isin(wanted_persons)]
    registry: dict[str, list[EvidenceRef]] = defaultdict(list)
    for person, cid in zip(contributors["person_id"], contributors["contributor_id"],
                           strict=True):
        registry[person].append(("registry", str(cid)))
    for hit in hits:
        partner = by_pair[(hit.person_id, hit.employer_id)] if hit.employer_id \
            else by_person[hit.person_id]
        seen: set[EvidenceRef] = set()
        merged: list[EvidenceRef] = []
        for ref in [*partner, *hit.evidence, *registry[hit.person_id]]:
            if ref not in seen:
                seen.add(ref)
                merged.append(ref)
        hit.evidence = merged

