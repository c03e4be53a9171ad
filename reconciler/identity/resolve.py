"""Resolve records from every feed and the registry into persons.

The method, in the order it runs (README, *Identity*):

1. **Signatures.** Records with the same identity fields (a worker's payroll line repeats
   every month) are one *signature*; everything below works on signatures.
2. **Identifier links.** Signatures sharing a *valid* national ID, residence ID or border
   number are joined. A cluster may never hold two different valid identifiers of one
   kind: two residence IDs mean two people, whatever the names say.
3. **Scored links.** Candidate pairs come from blocks (same passport; same name key and
   birth year; same full birth date and nationality; same name key at the same employer).
   Each pair gets a Fellegi–Sunter score: a sum of per-comparison log₂ Bayes factors
   (:class:`WeightTable`, by default :class:`MatchWeights`) turned into a probability.
   Pairs are merged best first, under the same one-identifier-per-kind constraint, so the
   collective evidence decides: once residence ID A holds a registry record, a look-alike
   carrying residence ID B cannot join it.
4. **Bands.** Links at or above ``auto_threshold`` merge. Links in the review band do not
   merge; they are kept as *doubts* on both persons, which blocks auto-registration and
   surfaces in the finding. Anything below is dropped.
5. **Stable ids.** A person keeps the id the majority of its records had in the previous
   run; a new person is named after its smallest record reference, so the ids of a full
   re-run equal those of an incremental one.

What is compared and blocked on is a :class:`~reconciler.identity.comparisons.Configuration`
(:data:`DEFAULT`: the contract's comparisons and blocks). Blocking, grading and scoring run
over arrays of candidate pairs; only the pairs that reach the review band are walked one by
one.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from reconciler.identity.comparisons import (
    BirthDateAgreement,
    BlockingRule,
    Configuration,
    ExactMatch,
    Features,
    FloatArray,
    IdentifierConflict,
    IdentifierTypo,
    IntArray,
    NameSimilarity,
    SharedEmployer,
    block_pairs,
    one_keystroke_apart,
)
from reconciler.identity.normalize import (
    BirthDate,
    arabic_to_latin,
    name_key,
    name_tokens,
    parse_birth_date,
)

__all__ = ["DEFAULT", "FIELDS", "IDENTITY_COLUMNS", "LEVEL_WORDS", "STRONG_KINDS",
           "ContractBlocking", "IdentityResolver", "Link", "MatchWeights", "Person", "Prepared",
           "Resolution", "WeightTable", "blocking_keys", "contract_row_keys", "hopeless",
           "identity_frame", "keystroke_repairs", "mint_person_id", "one_keystroke_apart",
           "record_tokens"]

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


@dataclass(frozen=True)
class ContractBlocking(BlockingRule):
    """The product's blocks (:func:`blocking_keys`): same passport; same name key and birth
    year; same full birth date and nationality; same name key at the same employer."""

    def keys(self, f: Features) -> tuple[IntArray, list[str]]:
        sig: list[int] = []
        keys: list[str] = []
        for i, args in enumerate(zip(f["name_key"], f["dob"], f["nationality"],
                                     f["passport"], f["employers"], strict=True)):
            for key in blocking_keys(*args):
                sig.append(i)
                keys.append(key)
        return np.asarray(sig, dtype=np.int64), keys

    def row_keys(self, row: Mapping[str, object]) -> list[str]:
        return contract_row_keys(row)


def contract_row_keys(row: Mapping[str, object],
                      tokens: tuple[str, ...] | None = None) -> list[str]:
    """:func:`blocking_keys` of one record (``tokens``: its name tokens, if known)."""
    if tokens is None:
        tokens = record_tokens(row.get("name_en"), row.get("name_ar"))
    try:
        raw = row.get("date_of_birth")
        dob = parse_birth_date(str(raw)) if raw else None
    except ValueError:
        dob = None
    employer, passport = row.get("employer_id"), row.get("passport_number")
    nationality = row.get("nationality")
    return blocking_keys(
        name_key(tokens) if tokens else None, dob,
        nationality if isinstance(nationality, str) else None,
        passport if isinstance(passport, str) else None,
        [employer] if isinstance(employer, str) and employer else [])


DEFAULT = Configuration(
    # the order is the order weights are summed in, and the order of a link's explanation
    comparisons=(IdentifierConflict(), NameSimilarity(), BirthDateAgreement(),
                 ExactMatch("nationality"), ExactMatch("sex"), IdentifierTypo(),
                 ExactMatch("passport_number", name="passport", disagreement=False),
                 SharedEmployer()),
    blocking=(ContractBlocking(),),
)

FIELDS: dict[str, tuple[str, ...]] = DEFAULT.fields  # each comparison's levels; "-": no evidence
LEVEL_WORDS: dict[tuple[str, str], str] = {
    (c.name, level): c.describe(level) for c in DEFAULT.comparisons for level in c.levels
    if level != "-"}


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
    def from_json(cls, data: Mapping[str, Any],
                  fields: Mapping[str, tuple[str, ...]] | None = None) -> WeightTable:
        """Read a model; ``fields``: the levels of the configuration it is for (default:
        the product's)."""
        known = FIELDS if fields is None else fields
        weights: dict[tuple[str, str], float] = {}
        for key, value in dict(data["weights"]).items():
            fld, _, level = str(key).partition(":")
            if level not in known.get(fld, ()):
                raise ValueError(f"unknown comparison level {key!r} in the model")
            weights[(fld, level)] = float(value)
        return cls(prior=float(data["prior"]), weights=weights,
                   tf_floor=float(data.get("tf_floor", -2.0)),
                   tf_ceiling=float(data.get("tf_ceiling", 1.0)))


LevelMatrix = npt.NDArray[np.int8]
_EXCLUSIVE = "\x00exclusive:"  # the kind under which a record's file joins its identifiers


@dataclass
class Prepared:
    """Steps 1 and 2 done: signatures, their features and the identifier links; the
    candidate pairs and their levels once computed (they do not depend on the weights, so
    training and resolution share them)."""

    frame: pd.DataFrame
    sig_codes: IntArray
    sigs: pd.DataFrame
    features: Features
    clusters: _Clusters
    first_ref: list[str]  # the smallest record ref of each signature
    rank: IntArray  # each signature's place in the order of first_ref
    pairs: tuple[IntArray, IntArray] | None = None
    levels: LevelMatrix | None = None

    def roots(self) -> IntArray:
        find = self.clusters.find
        return np.fromiter((find(i) for i in range(len(self.sigs))), dtype=np.int64,
                           count=len(self.sigs))


class IdentityResolver:
    def __init__(self, auto_threshold: float = 0.99, review_threshold: float = 0.80,
                 max_block_size: int = 200, weights: WeightTable | None = None,
                 configuration: Configuration | None = None) -> None:
        self.auto_threshold = auto_threshold
        self.review_threshold = review_threshold
        self.max_block_size = max_block_size
        self.configuration = configuration or DEFAULT
        self.table = weights or WeightTable.from_match_weights(MatchWeights())
        # Term frequencies of names: by default counted over the records being resolved;
        # the incremental index passes the counts of the whole population instead.
        self.name_counts: Mapping[frozenset[str], int] | None = None
        # How many distinct signatures a name usually has (a person's contract, permit,
        # payroll spellings, registry record): a name borne by more counts for less. Fixed,
        # not measured per run, so one delivery changes only the weights of its own names.
        self.tf_typical: float = 4.0
        self._terms: tuple[WeightTable, list[list[tuple[str, float]]]] | None = None

    @property
    def extra_columns(self) -> list[str]:
        """The columns the configuration reads beyond the contract's identity columns."""
        return [c for c in self.configuration.columns
                if c not in IDENTITY_COLUMNS and c not in ("ref", "employer_id")]

    @property
    def signature_columns(self) -> list[str]:
        return [*IDENTITY_COLUMNS, *self.extra_columns]

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
        """``records``: one row per record, columns ``ref``, ``employer_id``,
        :data:`IDENTITY_COLUMNS` and any the configuration reads. ``previous``: ref →
        person id of the last run."""
        return self.resolve_prepared(self.prepare(records), previous)

    def resolve_prepared(self, prep: Prepared,
                         previous: Mapping[str, str] | None = None) -> Resolution:
        """Steps 3 to 5 on prepared records (which this consumes: links join its
        clusters)."""
        clusters, first_ref, rank = prep.clusters, prep.first_ref, prep.rank
        # 3. scored links, best first; equal scores in the order of their records
        i_all, j_all = self.candidate_pairs(prep)
        levels = self.grade(prep, i_all, j_all)
        score, tf = self.scores(prep.features, i_all, j_all, levels)
        # only pairs that can reach the review band are walked (the exact test is below)
        keep = np.flatnonzero(score >= _score_bound(self.review_threshold) - 1e-6)
        order = keep[np.lexsort((rank[j_all[keep]], rank[i_all[keep]], -score[keep]))]
        link_edges: list[tuple[int, int, float, dict[str, float]]] = []
        doubt_edges: list[tuple[int, int, float, dict[str, float]]] = []
        for k in order.tolist():
            p = _probability(float(score[k]))
            if p < self.review_threshold:
                break
            i, j = int(i_all[k]), int(j_all[k])
            if p >= self.auto_threshold and clusters.union(i, j):
                link_edges.append((i, j, p, self.explain(levels[k], tf[k])))
            elif clusters.find(i) != clusters.find(j):
                doubt_edges.append((i, j, p, self.explain(levels[k], tf[k])))
        # 4. persons
        sigs, sig_codes = prep.sigs, prep.sig_codes
        refs = prep.frame["ref"].to_numpy()
        roots = prep.roots()
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
        stats = {"records": len(prep.frame), "signatures": len(sigs), "persons": len(persons),
                 "candidate_pairs": len(i_all), "scored_links": len(link_edges),
                 "review_links": len(doubt_edges)}
        return Resolution(person_of=person_of, persons=persons, stats=stats)

    def prepare(self, records: pd.DataFrame) -> Prepared:
        """Steps 1 and 2: signatures, their features, and the identifier links."""
        extra = self.extra_columns
        sig_cols = [c for c in [*IDENTITY_COLUMNS, *extra] if c in records.columns]
        if self.configuration.exclusive:
            sig_cols.append("ref")  # every record of a clean file is a person of its own
        frame = records.reindex(columns=["ref", "employer_id", *IDENTITY_COLUMNS, *extra])
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
        ids: list[dict[str, str]] = features["ids"]
        exclusive = self.configuration.exclusive
        if exclusive:
            # one record per file and person: the file joins the identifiers as a kind of
            # its own, valued by the signature, so two of one file can never merge
            ids = [{**own, _EXCLUSIVE + str(v): str(k)} if v is not None else own
                   for k, (own, v) in enumerate(zip(ids, features.values(exclusive),
                                                    strict=True))]
        clusters = _Clusters(ids)
        # 2. identifier links
        for kind in STRONG_KINDS:
            holder: dict[str, int] = {}  # the first signature seen with each valid value
            for i, own in enumerate(features["ids"]):
                value = own.get(kind)
                if value is not None:
                    clusters.union(holder.setdefault(value, i), i)
        # a link names the smallest record ref of each signature: the same whatever order
        # the records came in (a full run and an incremental one explain links alike,
        # and break ties between equal scores the same way)
        first: dict[int, str] = {}
        for code, ref in zip(sig_codes.tolist(), frame["ref"].tolist(), strict=True):
            if code not in first or str(ref) < first[code]:
                first[code] = str(ref)
        first_ref = [first[k] for k in range(len(sigs))]
        rank = np.empty(len(sigs), dtype=np.int64)
        rank[np.argsort(np.asarray(first_ref, dtype=object), kind="stable")] = \
            np.arange(len(sigs))
        return Prepared(frame=frame, sig_codes=sig_codes, sigs=sigs, features=features,
                        clusters=clusters, first_ref=first_ref, rank=rank)

    def candidate_pairs(self, prep: Prepared) -> tuple[IntArray, IntArray]:
        """The pairs to score, each ordered by its signatures' first refs, in order of
        (smaller signature, larger signature). Computed once per :class:`Prepared`."""
        if prep.pairs is None:
            n = len(prep.sigs)
            codes = self._candidate_codes(prep)
            lo, hi = codes // n, codes % n
            swap = prep.rank[lo] > prep.rank[hi]
            prep.pairs = (np.where(swap, hi, lo), np.where(swap, lo, hi))
        return prep.pairs

    def grade(self, prep: Prepared, i: IntArray, j: IntArray) -> LevelMatrix:
        """One row per pair, one column per comparison: the index of its level. The
        candidate pairs' levels are kept on ``prep``."""
        pairs = prep.pairs
        if pairs is not None and prep.levels is not None and i is pairs[0] and j is pairs[1]:
            return prep.levels
        levels = self.grade_pairs(prep.features, i, j)
        if pairs is not None and i is pairs[0] and j is pairs[1]:
            prep.levels = levels
        return levels

    def grade_pairs(self, f: Features, i: IntArray, j: IntArray) -> LevelMatrix:
        comparisons = self.configuration.comparisons
        out = np.empty((len(i), len(comparisons)), dtype=np.int8)
        for col, comparison in enumerate(comparisons):
            out[:, col] = comparison.grade(f, i, j)
        return out

    def scores(self, f: Features, i: IntArray, j: IntArray,
               levels: LevelMatrix) -> tuple[FloatArray, FloatArray]:
        """Each pair's score — the prior plus its levels' weights, summed in the order of
        the comparisons, plus the term-frequency adjustment — and that adjustment."""
        table = self.table
        score = np.full(len(i), table.prior, dtype=np.float64)
        tf = np.zeros(len(i), dtype=np.float64)
        for col, comparison in enumerate(self.configuration.comparisons):
            weights = np.array([table.weights.get((comparison.name, lv), 0.0)
                                for lv in comparison.levels], dtype=np.float64)
            score += weights[levels[:, col]]
        for col, comparison in enumerate(self.configuration.comparisons):
            adjustment = comparison.term_frequency(f, i, j, levels[:, col])
            if adjustment is not None:
                adjustment = np.round(adjustment, 2)
                score += adjustment
                tf += adjustment
        return score, tf

    def explain(self, levels: npt.NDArray[np.int8], tf: float) -> dict[str, float]:
        """A pair's weights keyed by the words of its levels (only those that count), the
        prior first and the name-frequency adjustment last; they sum to its score."""
        table = self.table
        if self._terms is None or self._terms[0] is not table:
            self._terms = (table, [
                [(c.describe(level), table.weights.get((c.name, level), 0.0))
                 for level in c.levels] for c in self.configuration.comparisons])
        weights: dict[str, float] = {"prior": table.prior}
        for terms, index in zip(self._terms[1], levels.tolist(), strict=True):
            words, weight = terms[index]
            if weight:
                weights[words] = weight
        if tf:
            name = next((c.name for c in self.configuration.comparisons
                         if isinstance(c, NameSimilarity)), "name")
            weights[name + " " + ("common" if tf < 0 else "rare")] = float(tf)
        return weights

    # -- steps ----------------------------------------------------------------------------

    def _features(self, sigs: pd.DataFrame) -> Features:
        """The contract's per-signature features, each computed when first needed (a
        configuration that never reads a name never tokenises one)."""
        n = len(sigs)

        def empty(*columns: str) -> bool:
            return not any(sigs[c].notna().any() for c in columns)

        def tokens(_f: Features) -> list[tuple[str, ...]]:
            if empty("name_en", "name_ar"):
                return [()] * n
            return [record_tokens(en, ar)
                    for en, ar in zip(sigs["name_en"], sigs["name_ar"], strict=True)]

        def dobs(_f: Features) -> list[BirthDate | None]:
            out: list[BirthDate | None] = []
            if empty("date_of_birth"):
                return [None] * n
            for raw in sigs["date_of_birth"]:
                try:
                    out.append(parse_birth_date(raw) if raw else None)
                except ValueError:
                    out.append(None)
            return out

        def raw_ids(_f: Features) -> list[dict[str, str]]:
            if empty(*STRONG_KINDS):
                return [{} for _ in range(n)]
            return [{k: v for k, v in zip(STRONG_KINDS, values, strict=True)
                     if isinstance(v, str) and v}
                    for values in zip(*(sigs[k] for k in STRONG_KINDS), strict=True)]

        def ids(f: Features) -> list[dict[str, str]]:
            return [{k: v for k, v in raw.items() if k not in (bad or "")}
                    for raw, bad in zip(f["raw_ids"], sigs["invalid_ids"], strict=True)]

        def name_tf(f: Features) -> list[float]:
            # Term frequency: how many signatures carry this exact name (any token order).
            toks: list[tuple[str, ...]] = f["tokens"]
            counts: Mapping[frozenset[str], int] = self.name_counts or Counter(
                frozenset(t) for t in toks if t)
            return [self.name_tf(counts.get(frozenset(t), 1), self.tf_typical) if t else 0.0
                    for t in toks]

        return Features(sigs, {
            "tokens": tokens,
            "name_tf": name_tf,
            "name_key": lambda f: [name_key(t) if t else None for t in f["tokens"]],
            "dob": dobs,
            "nationality": lambda _f: sigs["nationality"].tolist(),
            "sex": lambda _f: sigs["sex"].tolist(),
            "passport": lambda _f: sigs["passport_number"].tolist(),
            "raw_ids": raw_ids,
            "ids": ids,
            "employers": lambda _f: sigs["employers"].tolist(),
        })

    def _candidate_codes(self, prep: Prepared) -> IntArray:
        """Candidate pairs as sorted codes ``lo * n + hi``: pairs sharing a blocking key
        (blocks of at most ``max_block_size``), not already one cluster, not hopeless, and
        not of one file under an ``exclusive`` configuration; plus identifier typos."""
        f, n = prep.features, len(prep.sigs)
        sig_parts: list[IntArray] = []
        keys: list[str] = []
        for rule in self.configuration.blocking:
            sig, rule_keys = rule.keys(f)
            sig_parts.append(sig)
            keys.extend(rule_keys)
        sig_all = np.concatenate(sig_parts) if sig_parts else np.empty(0, dtype=np.int64)
        codes = np.unique(block_pairs(sig_all, keys, self.max_block_size, n))
        lo, hi = codes // n, codes % n
        roots = prep.roots()
        keep = roots[lo] != roots[hi]
        # two different valid identifiers of one kind and no shared passport cannot reach
        # the review band: most of a look-alike block, never scored
        ids, passports = f["ids"], f["passport"]
        has_ids = f.truthy("ids")
        for k in np.flatnonzero(keep & has_ids[lo] & has_ids[hi]).tolist():
            a, b = int(lo[k]), int(hi[k])
            if hopeless(ids[a], ids[b], passports[a], passports[b]):
                keep[k] = False
        codes = codes[keep]
        typos = self._typo_pairs(prep)
        if typos:
            codes = np.union1d(codes, np.fromiter((i * n + j for i, j in typos),
                                                  dtype=np.int64, count=len(typos)))
        exclusive = self.configuration.exclusive
        if exclusive and len(codes):
            files = pd.factorize(f.values(exclusive), use_na_sentinel=True)[0]
            lo, hi = codes // n, codes % n
            codes = codes[(files[lo] != files[hi]) | (files[lo] < 0)]
        return codes

    def _typo_pairs(self, prep: Prepared) -> set[tuple[int, int]]:
        """Pair each identifier that fails its check with the valid identifiers one keystroke
        away: about a hundred dictionary look-ups per bad identifier, not a scan. (A Luhn
        digit catches every single-digit error and most neighbour swaps, so the typos that
        matter are exactly the ones marked invalid.)"""
        sigs, f, clusters = prep.sigs, prep.features, prep.clusters
        pairs: set[tuple[int, int]] = set()
        invalid = sigs["invalid_ids"].fillna("")
        if not invalid.astype(bool).any():
            return pairs
        holders: dict[str, dict[str, list[int]]] = {k: defaultdict(list) for k in STRONG_KINDS}
        for i, own in enumerate(f["ids"]):
            for kind, value in own.items():
                holders[kind][value].append(i)
        for i, (raw, bad) in enumerate(zip(f["raw_ids"], invalid, strict=True)):
            if not bad:
                continue
            for kind, value in raw.items():
                if kind not in bad or not value.isdigit():
                    continue
                for repair in keystroke_repairs(value):
                    for j in holders[kind].get(repair, ())[: self.max_block_size]:
                        if clusters.find(i) != clusters.find(j):
                            pairs.add((i, j) if i < j else (j, i))
        return pairs

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


def _score_bound(threshold: float) -> float:
    """The smallest score whose probability reaches ``threshold``."""
    if threshold <= 0:
        return -math.inf
    if threshold >= 1:
        return 53.0  # 1 / (1 + 2^-s) rounds to exactly 1.0 only beyond this
    return -math.log2(1.0 / threshold - 1.0)


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
