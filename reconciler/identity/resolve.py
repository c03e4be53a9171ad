"""Resolve records from every feed and the registry into persons.

The method, in the order it runs (README, *Identity*):

1. **Signatures.** Records with the same identity fields (a worker's payroll line repeats
   every month) are one *signature*; everything below works on signatures.
2. **Identifier links.** Signatures sharing a *valid* national ID, residence ID or border
   number are joined. A cluster may never hold two different valid identifiers of one
   kind: two residence IDs mean two people, whatever the names say.
3. **Scored links.** Candidate pairs come from blocks (same passport; same name key and
   birth year; same full birth date and nationality; same name key at the same employer).
   Each pair gets a Fellegi–Sunter score: a sum of per-field log₂ Bayes factors
   (:class:`MatchWeights`) turned into a probability. Pairs are merged best first, under the
   same one-identifier-per-kind constraint, so the collective evidence decides: once
   residence ID A holds a registry record, a look-alike carrying residence ID B cannot join it.
4. **Bands.** Links at or above ``auto_threshold`` merge. Links in the review band do not
   merge; they are kept as *doubts* on both persons, which blocks auto-registration and
   surfaces in the finding. Anything below is dropped.
5. **Stable ids.** A person keeps the id the majority of its records had in the previous
   run; a new person is named after its smallest record reference, so the ids of a full
   re-run equal those of an incremental one.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from reconciler.identity.normalize import (
    BirthDate,
    arabic_to_latin,
    birth_date_agreement,
    name_key,
    name_similarity,
    name_tokens,
    parse_birth_date,
)

STRONG_KINDS = ("national_id", "residence_id", "border_number")
IDENTITY_COLUMNS = ["national_id", "residence_id", "border_number", "passport_number",
                    "invalid_ids", "nationality", "name_en", "name_ar", "date_of_birth", "sex"]


@dataclass(frozen=True)
class MatchWeights:
    """log₂ Bayes factors per comparison level; the prior is the log₂ odds of a random
    candidate pair being a match. Read as: *this agreement makes a match 2^w times likelier*."""

    prior: float = -9.0
    name_exact: float = 9.0  # similarity ≥ 0.97
    name_close: float = 6.5  # ≥ 0.90
    name_fair: float = 3.0  # ≥ 0.80
    name_weak: float = -1.0  # ≥ 0.65
    name_differs: float = -8.0
    name_tf_floor: float = -2.0  # a very common name loses up to this much ...
    name_tf_ceiling: float = 1.0  # ... a rare one gains at most this much
    dob_exact: float = 7.0
    dob_exact_default: float = 2.0  # exact, but 1 January or another administrative default
    dob_swapped: float = 2.5
    dob_year: float = 1.0
    dob_differs: float = -8.0
    nationality_agrees: float = 1.5
    nationality_differs: float = -6.0
    sex_agrees: float = 0.3
    sex_differs: float = -5.0
    passport_agrees: float = 14.0
    identifier_typo: float = 8.0  # same kind, one side fails its check, one digit apart
    same_employer: float = 2.0
    identifier_conflict: float = -25.0


@dataclass(frozen=True)
class Link:
    """A scored link between two records, with the reasons in words."""

    ref_a: str
    ref_b: str
    probability: float
    weights: Mapping[str, float]

    def explain(self) -> list[str]:
        """The link in sentences an officer can read: each piece of evidence and how much
        likelier it makes "one person" (a weight w means 2^w times), then the verdict."""
        lines = []
        for name, w in self.weights.items():
            if name == "prior":
                continue
            factor = 2.0 ** abs(w)
            size = f"{factor:,.0f}" if factor >= 10 else f"{factor:.1f}"
            direction = "likelier" if w > 0 else "less likely"
            lines.append(f"{name[:1].upper()}{name[1:]}: {size} times {direction} to be "
                         f"one person ({w:+.1f}).")
        lines.append(f"Together: {self.probability:.2%} probability that the two records are "
                     "one person.")
        return lines


@dataclass
class Person:
    person_id: str
    refs: list[str]
    confidence: float  # the weakest link that holds the person together; 1.0 for identifiers
    links: list[Link] = field(default_factory=list)
    doubts: list[Link] = field(default_factory=list)  # review-band links to other persons


@dataclass
class Resolution:
    person_of: dict[str, str]  # record ref -> person id
    persons: dict[str, Person]
    stats: dict[str, int]


class _Clusters:
    """Union–find over signatures that refuses merges joining two different valid
    identifiers of the same kind."""

    def __init__(self, ids: list[dict[str, str]]) -> None:
        self.parent = list(range(len(ids)))
        self.ids: dict[int, dict[str, str]] = {i: dict(v) for i, v in enumerate(ids) if v}

    def find(self, i: int) -> int:
        parent = self.parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    def conflict(self, a: int, b: int) -> bool:
        ia, ib = self.ids.get(a), self.ids.get(b)
        if not ia or not ib:
            return False
        return any(ib.get(k, v) != v for k, v in ia.items())

    def union(self, i: int, j: int) -> bool:
        a, b = self.find(i), self.find(j)
        if a == b:
            return True
        if self.conflict(a, b):
            return False
        if b < a:
            a, b = b, a
        self.parent[b] = a
        merged = self.ids.pop(b, None)
        if merged:
            self.ids.setdefault(a, {}).update(merged)
        return True


def _probability(score: float) -> float:
    return 1.0 / (1.0 + math.pow(2.0, -score)) if score > -60 else 0.0


FIELDS: dict[str, tuple[str, ...]] = {
    # each field's comparison levels; "-" means no evidence either way (a side is empty)
    "identifier": ("conflict", "-"),
    "name": ("same", "close", "similar", "weak", "differs", "-"),
    "birth_date": ("same", "same_default", "swapped", "year", "differs", "-"),
    "nationality": ("same", "differs", "-"),
    "sex": ("same", "differs", "-"),
    "typo": ("one_keystroke", "-"),
    "passport": ("same", "-"),
    "employer": ("same", "-"),
}
LEVEL_WORDS: dict[tuple[str, str], str] = {
    ("identifier", "conflict"): "identifiers differ",
    ("name", "same"): "name same", ("name", "close"): "name close",
    ("name", "similar"): "name similar", ("name", "weak"): "name weakly similar",
    ("name", "differs"): "name differs",
    ("birth_date", "same"): "birth date same",
    ("birth_date", "same_default"): "birth date same (a default date)",
    ("birth_date", "swapped"): "birth date day/month swapped",
    ("birth_date", "year"): "birth year same", ("birth_date", "differs"): "birth date differs",
    ("nationality", "same"): "nationality same", ("nationality", "differs"): "nationality differs",
    ("sex", "same"): "sex same", ("sex", "differs"): "sex differs",
    ("typo", "one_keystroke"): "identifier one keystroke apart (a typo)",
    ("passport", "same"): "passport same", ("employer", "same"): "same employer",
}


@dataclass(frozen=True)
class WeightTable:
    """log₂ Bayes factor per (field, level) — hand-set defaults (:class:`MatchWeights`) or
    estimated from the data (``reconciler.identity.training``)."""

    prior: float
    weights: Mapping[tuple[str, str], float]
    tf_floor: float = -2.0
    tf_ceiling: float = 1.0

    @classmethod
    def from_match_weights(cls, w: MatchWeights) -> WeightTable:
        return cls(prior=w.prior, tf_floor=w.name_tf_floor, tf_ceiling=w.name_tf_ceiling,
                   weights={
                       ("identifier", "conflict"): w.identifier_conflict,
                       ("name", "same"): w.name_exact, ("name", "close"): w.name_close,
                       ("name", "similar"): w.name_fair, ("name", "weak"): w.name_weak,
                       ("name", "differs"): w.name_differs,
                       ("birth_date", "same"): w.dob_exact,
                       ("birth_date", "same_default"): w.dob_exact_default,
                       ("birth_date", "swapped"): w.dob_swapped,
                       ("birth_date", "year"): w.dob_year,
                       ("birth_date", "differs"): w.dob_differs,
                       ("nationality", "same"): w.nationality_agrees,
                       ("nationality", "differs"): w.nationality_differs,
                       ("sex", "same"): w.sex_agrees, ("sex", "differs"): w.sex_differs,
                       ("typo", "one_keystroke"): w.identifier_typo,
                       ("passport", "same"): w.passport_agrees,
                       ("employer", "same"): w.same_employer,
                   })

    def to_json(self) -> dict[str, object]:
        return {"prior": self.prior, "tf_floor": self.tf_floor, "tf_ceiling": self.tf_ceiling,
                "weights": {f"{f}:{lv}": w for (f, lv), w in sorted(self.weights.items())}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WeightTable:
        weights: dict[tuple[str, str], float] = {}
        for key, value in dict(data["weights"]).items():
            fld, _, level = str(key).partition(":")
            if level not in FIELDS.get(fld, ()):
                raise ValueError(f"unknown comparison level {key!r} in the model")
            weights[(fld, level)] = float(value)
        return cls(prior=float(data["prior"]), weights=weights,
                   tf_floor=float(data.get("tf_floor", -2.0)),
                   tf_ceiling=float(data.get("tf_ceiling", 1.0)))


def compare(f: Mapping[str, list[object]], i: int, j: int) -> tuple[dict[str, str], float]:
    """The comparison level of every field for signatures ``i`` and ``j``, and the name's
    term-frequency adjustment (used when the names are the same)."""
    levels: dict[str, str] = dict.fromkeys(FIELDS, "-")
    ids_i, ids_j = f["ids"][i], f["ids"][j]
    assert isinstance(ids_i, dict) and isinstance(ids_j, dict)
    if any(ids_j.get(kind, value) != value for kind, value in ids_i.items()):
        levels["identifier"] = "conflict"
    ti, tj = f["tokens"][i], f["tokens"][j]
    assert isinstance(ti, tuple) and isinstance(tj, tuple)
    tf = 0.0
    if ti and tj:
        sim = name_similarity(ti, tj)
        levels["name"] = ("same" if sim >= 0.97 else "close" if sim >= 0.90 else
                          "similar" if sim >= 0.80 else "weak" if sim >= 0.65 else "differs")
        tf_i, tf_j = f["name_tf"][i], f["name_tf"][j]
        assert isinstance(tf_i, float) and isinstance(tf_j, float)
        tf = max(tf_i, tf_j)
    di, dj = f["dob"][i], f["dob"][j]
    assert di is None or isinstance(di, BirthDate)
    assert dj is None or isinstance(dj, BirthDate)
    agreement = birth_date_agreement(di, dj)
    if agreement == "exact":
        low = di is not None and di.is_low_information
        levels["birth_date"] = "same_default" if low else "same"
    elif agreement != "unknown":
        levels["birth_date"] = {"swapped": "swapped", "year": "year",
                                "mismatch": "differs"}[agreement]
    for fld, key in (("nationality", "nationality"), ("sex", "sex")):
        a, b = f[key][i], f[key][j]
        if a and b:
            levels[fld] = "same" if a == b else "differs"
    raw_i, raw_j = f["raw_ids"][i], f["raw_ids"][j]
    assert isinstance(raw_i, dict) and isinstance(raw_j, dict)
    for kind, value in raw_i.items():
        other = raw_j.get(kind)
        if other and other != value and (kind not in ids_i or kind not in ids_j) \
                and one_keystroke_apart(value, other):
            levels["typo"] = "one_keystroke"
            break
    pi, pj = f["passport"][i], f["passport"][j]
    if pi and pj and pi == pj:
        levels["passport"] = "same"
    ei, ej = f["employers"][i], f["employers"][j]
    assert isinstance(ei, frozenset) and isinstance(ej, frozenset)
    if ei & ej:
        levels["employer"] = "same"
    return levels, tf


class IdentityResolver:
    def __init__(self, auto_threshold: float = 0.99, review_threshold: float = 0.80,
                 max_block_size: int = 200, weights: WeightTable | None = None) -> None:
        self.auto_threshold = auto_threshold
        self.review_threshold = review_threshold
        self.max_block_size = max_block_size
        self.table = weights or WeightTable.from_match_weights(MatchWeights())
        # Term frequencies of names: by default counted over the records being resolved;
        # the incremental index passes the counts of the whole population instead.
        self.name_counts: Mapping[frozenset[str], int] | None = None
        # How many distinct signatures a name usually has (a person's contract, permit,
        # payroll spellings, registry record): a name borne by more counts for less. Fixed,
        # not measured per run, so one delivery changes only the weights of its own names.
        self.tf_typical: float = 4.0

    def name_tf(self, count: int, typical: float) -> float:
        """The name-frequency adjustment: log₂(typical / count), clipped to the table's
        floor and ceiling and rounded to quarters — so one more or one fewer bearer of a
        name rarely changes its weight (which keeps incremental deliveries local)."""
        raw = math.log2(typical / max(count, 1))
        clipped = min(max(raw, self.table.tf_floor), self.table.tf_ceiling)
        return round(clipped * 4) / 4

    # -- public ---------------------------------------------------------------------------

    def resolve(self, records: pd.DataFrame,
                previous: Mapping[str, str] | None = None) -> Resolution:
        """``records``: one row per record, columns ``ref``, ``employer_id`` and
        :data:`IDENTITY_COLUMNS`. ``previous``: ref → person id of the last run."""
        frame, sig_codes, _first_rows, sigs, features, clusters = self.prepare(records)
        refs = frame["ref"].to_numpy()
        # a link names the smallest record ref of each signature: the same whatever order
        # the records came in (a full run and an incremental one explain links alike,
        # and break ties between equal scores the same way)
        first_ref: dict[int, str] = {}
        for code, ref in zip(sig_codes, refs, strict=True):
            key = int(code)
            if key not in first_ref or str(ref) < first_ref[key]:
                first_ref[key] = str(ref)
        # 3. scored links, best first; equal scores in the order of their records
        pairs = [(i, j) if first_ref[i] < first_ref[j] else (j, i)
                 for i, j in self._candidate_pairs(sigs, features, clusters)]
        scored = [(self._score(features, i, j), i, j) for i, j in pairs]
        scored.sort(key=lambda t: (-t[0][0], first_ref[t[1]], first_ref[t[2]]))
        link_edges: list[tuple[int, int, float, dict[str, float]]] = []
        doubt_edges: list[tuple[int, int, float, dict[str, float]]] = []
        for (score, weights), i, j in scored:
            p = _probability(score)
            if p < self.review_threshold:
                break
            if p >= self.auto_threshold and clusters.union(i, j):
                link_edges.append((i, j, p, weights))
            elif clusters.find(i) != clusters.find(j):
                doubt_edges.append((i, j, p, weights))
        # 4. persons
        roots = np.fromiter((clusters.find(i) for i in range(len(sigs))), dtype=np.int64,
                            count=len(sigs))
        record_root = roots[sig_codes]
        by_root: dict[int, list[str]] = defaultdict(list)
        for ref, root in zip(refs, record_root, strict=True):
            by_root[int(root)].append(str(ref))
        names = self._name_persons(by_root, previous or {})
        persons = {pid: Person(pid, sorted(by_root[root]), 1.0) for root, pid in names.items()}
        for i, j, p, weights in link_edges:
            person = persons[names[int(roots[i])]]
            person.confidence = min(person.confidence, p)
            person.links.append(Link(first_ref[i], first_ref[j], p, weights))
        for i, j, p, weights in doubt_edges:
            ri, rj = int(roots[i]), int(roots[j])
            if ri == rj:
                continue
            link = Link(first_ref[i], first_ref[j], p, weights)
            persons[names[ri]].doubts.append(link)
            persons[names[rj]].doubts.append(link)
        person_of = {ref: names[int(root)] for ref, root in zip(refs, record_root, strict=True)}
        stats = {"records": len(frame), "signatures": len(sigs), "persons": len(persons),
                 "candidate_pairs": len(pairs), "scored_links": len(link_edges),
                 "review_links": len(doubt_edges)}
        return Resolution(person_of=person_of, persons=persons, stats=stats)

    def prepare(self, records: pd.DataFrame) -> tuple[
            pd.DataFrame, Any, pd.Series, pd.DataFrame, dict[str, list[object]], _Clusters]:
        """Steps 1 and 2: signatures, their features, and the identifier links."""
        sig_cols = [c for c in IDENTITY_COLUMNS if c in records.columns]
        frame = records.reindex(columns=["ref", "employer_id", *IDENTITY_COLUMNS])
        frame = frame.astype(object).where(frame.notna(), None)
        # one code per distinct combination of identity fields, in order of first appearance
        sig_codes = frame.groupby(sig_cols, dropna=False, sort=False).ngroup().to_numpy()
        first_rows = pd.Series(range(len(frame))).groupby(sig_codes).first()
        sigs = frame.iloc[first_rows.to_numpy()].reset_index(drop=True)
        sigs["sig"] = np.arange(len(sigs))
        employers: list[set[str]] = [set() for _ in range(len(sigs))]
        for code, employer in zip(sig_codes, frame["employer_id"], strict=True):
            if employer:
                employers[code].add(employer)
        sigs["employers"] = [frozenset(e) for e in employers]
        features = self._features(sigs)
        clusters = _Clusters(features["ids"])  # type: ignore[arg-type]
        # 2. identifier links
        for kind in STRONG_KINDS:
            holder: dict[str, int] = {}  # the first signature seen with each valid value
            for i, ids in enumerate(features["ids"]):
                assert isinstance(ids, dict)
                value = ids.get(kind)
                if value is not None:
                    clusters.union(holder.setdefault(value, i), i)
        return frame, sig_codes, first_rows, sigs, features, clusters

    # -- steps ----------------------------------------------------------------------------

    def _features(self, sigs: pd.DataFrame) -> dict[str, list[object]]:
        tokens = [record_tokens(en, ar)
                  for en, ar in zip(sigs["name_en"], sigs["name_ar"], strict=True)]
        dobs: list[BirthDate | None] = []
        for raw in sigs["date_of_birth"]:
            try:
                dobs.append(parse_birth_date(raw) if raw else None)
            except ValueError:
                dobs.append(None)
        raw_ids = [{k: v for k, v in zip(STRONG_KINDS, values, strict=True)
                    if isinstance(v, str) and v}
                   for values in zip(*(sigs[k] for k in STRONG_KINDS), strict=True)]
        # Term frequency: how many signatures carry this exact name (any token order).
        counts: Mapping[frozenset[str], int] = self.name_counts or Counter(
            frozenset(t) for t in tokens if t)
        name_tf = [self.name_tf(counts.get(frozenset(t), 1), self.tf_typical) if t else 0.0
                   for t in tokens]
        return {
            "name_tf": name_tf,
            "tokens": list(tokens),
            "name_key": [name_key(t) if t else None for t in tokens],
            "dob": list(dobs),
            "nationality": sigs["nationality"].tolist(),
            "sex": sigs["sex"].tolist(),
            "passport": sigs["passport_number"].tolist(),
            "ids": [{k: v for k, v in raw.items() if k not in (bad or "")}
                    for raw, bad in zip(raw_ids, sigs["invalid_ids"], strict=True)],
            "employers": sigs["employers"].tolist(),
            "raw_ids": raw_ids,
        }

    def _candidate_pairs(self, sigs: pd.DataFrame, f: Mapping[str, list[object]],
                         clusters: _Clusters) -> list[tuple[int, int]]:
        pairs: set[tuple[int, int]] = set()
        ids, passports = f["ids"], f["passport"]
        groups: dict[str, list[int]] = defaultdict(list)
        for i, (nkey, dob, nationality, passport, employers) in enumerate(zip(
                f["name_key"], f["dob"], f["nationality"], passports, f["employers"],
                strict=True)):
            for key in blocking_keys(nkey, dob, nationality, passport, employers):  # type: ignore[arg-type]
                groups[key].append(i)
        for members in groups.values():
            if len(members) < 2 or len(members) > self.max_block_size:
                continue
            roots = [clusters.find(m) for m in members]
            for a in range(len(members)):
                for b in range(a + 1, len(members)):
                    if roots[a] != roots[b]:
                        i, j = members[a], members[b]
                        if not hopeless(ids[i], ids[j], passports[i], passports[j]):  # type: ignore[arg-type]
                            pairs.add((i, j) if i < j else (j, i))
        self._typo_pairs(sigs, f, clusters, pairs)
        return sorted(pairs)

    def _typo_pairs(self, sigs: pd.DataFrame, f: Mapping[str, list[object]],
                    clusters: _Clusters, pairs: set[tuple[int, int]]) -> None:
        """Pair each identifier that fails its check with the valid identifiers one keystroke
        away: about a hundred dictionary look-ups per bad identifier, not a scan. (A Luhn
        digit catches every single-digit error and most neighbour swaps, so the typos that
        matter are exactly the ones marked invalid.)"""
        invalid = sigs["invalid_ids"].fillna("")
        holders: dict[str, dict[str, list[int]]] = {k: defaultdict(list) for k in STRONG_KINDS}
        for i, ids in enumerate(f["ids"]):
            assert isinstance(ids, dict)
            for kind, value in ids.items():
                holders[kind][value].append(i)
        for i, (raw, bad) in enumerate(zip(f["raw_ids"], invalid, strict=True)):
            if not bad:
                continue
            assert isinstance(raw, dict)
            for kind, value in raw.items():
                if kind not in bad or not value.isdigit():
                    continue
                for repair in keystroke_repairs(value):
                    for j in holders[kind].get(repair, ())[: self.max_block_size]:
                        if clusters.find(i) != clusters.find(j):
                            pairs.add((i, j) if i < j else (j, i))

    def _score(self, f: Mapping[str, list[object]], i: int,
               j: int) -> tuple[float, dict[str, float]]:
        """Sum of the weights of each field's comparison level, plus the prior and the
        name-frequency adjustment; the breakdown is keyed by the level's words."""
        levels, tf = compare(f, i, j)
        table = self.table
        weights: dict[str, float] = {"prior": table.prior}
        for fld, level in levels.items():
            weight = table.weights.get((fld, level), 0.0)
            if weight:
                weights[LEVEL_WORDS.get((fld, level), f"{fld} {level}")] = weight
        if levels.get("name") == "same" and tf:
            weights["name " + ("common" if tf < 0 else "rare")] = round(tf, 2)
        return sum(weights.values()), weights

    @staticmethod
    def _name_persons(by_root: Mapping[int, list[str]],
                      previous: Mapping[str, str]) -> dict[int, str]:
        """Keep last run's id where the majority of a person's records had it; otherwise
        derive the id from the smallest record ref (so a full re-run gives the same ids)."""
        names: dict[int, str] = {}
        taken: set[str] = set()
        order = sorted(by_root, key=lambda r: (-len(by_root[r]), min(by_root[r])))
        for root in order:
            votes = Counter(previous[ref] for ref in by_root[root] if ref in previous)
            for pid, _ in sorted(votes.items(), key=lambda kv: (-kv[1], kv[0])):
                if pid not in taken:
                    names[root] = pid
                    break
            else:
                names[root] = mint_person_id(min(by_root[root]))
            taken.add(names[root])
        return names


def blocking_keys(name_key: str | None, dob: BirthDate | None, nationality: str | None,
                  passport: str | None, employers: Iterable[str]) -> list[str]:
    """The blocks a record (or signature) belongs to: same passport; same name key and
    birth year; same full birth date and nationality; same name key at the same employer.
    The resolver and the incremental index both use this, so they pair alike."""
    keys = [f"pp:{passport}"] if passport else []
    if name_key and dob:
        keys.append(f"ny:{name_key}:{dob.year}")
    if dob and dob.precision == "day" and nationality:
        keys.append(f"dn:{dob.iso()}:{nationality}")
    if name_key:
        keys.extend(f"ne:{name_key}:{e}" for e in sorted(employers))
    return keys


def hopeless(ids_a: Mapping[str, str], ids_b: Mapping[str, str], passport_a: object,
             passport_b: object) -> bool:
    """Two different valid identifiers of one kind and no shared passport: the score cannot
    reach the review band (the conflict outweighs every agreement but a passport), so such
    pairs — most of a look-alike block — are not scored at all."""
    if not ids_a or not ids_b or (passport_a and passport_a == passport_b):
        return False
    return any(ids_b.get(k, v) != v for k, v in ids_a.items())


def record_tokens(name_en: object, name_ar: object) -> tuple[str, ...]:
    """The name tokens of a record: its Latin name, else its Arabic name romanised."""
    tokens = name_tokens(name_en) if isinstance(name_en, str) and name_en else ()
    if not tokens and isinstance(name_ar, str) and name_ar:
        tokens = name_tokens(arabic_to_latin(name_ar))
    return tokens


def one_keystroke_apart(a: str, b: str) -> bool:
    """One digit changed, or two neighbours swapped — the typos a check digit catches."""
    if len(a) != len(b):
        return False
    diff = [k for k in range(len(a)) if a[k] != b[k]]
    if len(diff) == 1:
        return True
    return (len(diff) == 2 and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])


def keystroke_repairs(value: str) -> list[str]:
    """Every string one digit change or one neighbour swap away from ``value``."""
    out: list[str] = []
    for k in range(len(value)):
        for d in "0123456789":
            if d != value[k]:
                out.append(value[:k] + d + value[k + 1:])
        if k + 1 < len(value) and value[k] != value[k + 1]:
            out.append(value[:k] + value[k + 1] + value[k] + value[k + 2:])
    return out


def mint_person_id(ref: str) -> str:
    return "P" + hashlib.sha256(ref.encode()).hexdigest()[:15].upper()


def identity_frame(rows: Iterable[Mapping[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(list(rows)).reindex(columns=["ref", "employer_id", *IDENTITY_COLUMNS])
