"""Resolve records from every feed and the registry into persons.

The method, in the order it runs (README, *Identity*):

1. **Signatures.** Records with the same identity fields (a worker's payroll line repeats
   every month) are one *signature*; everything below works on signatures, held as arrays
   of codes into per-column tables (``reconciler.identity.signatures``): each distinct
   name is tokenised once, each distinct birth date parsed once.
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
over arrays of candidate pairs; the costly comparisons (names) are graded only for the
pairs the others leave able to reach the review band, and only the pairs that reach it
are walked one by one. Nothing depends on the order the records come in: ties go to the
smaller record ref.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from reconciler.identity.comparisons import (
    BirthDateAgreement,
    BlockingRule,
    Comparison,
    Configuration,
    ExactMatch,
    Features,
    FloatArray,
    IdentifierConflict,
    IdentifierTypo,
    IntArray,
    Keys,
    NameSimilarity,
    SharedEmployer,
    one_keystroke_apart,
)
from reconciler.identity.normalize import (
    BirthDate,
    arabic_to_latin,
    name_key,
    name_tokens,
    parse_birth_date,
)
from reconciler.identity.signatures import (
    IDENTITY_COLUMNS,
    STRONG_KINDS,
    ObjectArray,
    SigArrays,
    Tables,
    UnionFind,
    as_objects,
    cluster_identity,
    gc_paused,
    group_records,
    id_structure,
    object_array,
    unique,
    unique_counts,
)

__all__ = ["DEFAULT", "FIELDS", "IDENTITY_COLUMNS", "LEVEL_WORDS", "STRONG_KINDS",
           "ContractBlocking", "IdentityResolver", "Link", "MatchWeights", "Person", "Prepared",
           "Resolution", "WeightTable", "blocking_keys", "contract_row_keys", "hopeless",
           "identity_frame", "keystroke_repairs", "mint_person_id", "one_keystroke_apart",
           "record_tokens"]


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


class Resolution:
    """Who is who: each record's person (``person_of``, ref → id, or :meth:`person_ids` for
    many refs at once), the persons (built when first looked at) and counts."""

    def __init__(self, person_of: dict[str, str] | None = None,
                 persons: Mapping[str, Person] | None = None,
                 stats: dict[str, int] | None = None, *,
                 refs: ObjectArray | None = None, ids: ObjectArray | None = None,
                 locate: Callable[[list[str]], IntArray] | None = None) -> None:
        self._person_of = person_of
        self._refs, self._ids = refs, ids  # or the same as two arrays, ref k -> ids[k]
        self._locate = locate  # refs -> their places in ``refs`` (-1: not there)
        self.persons: Mapping[str, Person] = persons if persons is not None else {}
        self.stats: dict[str, int] = stats if stats is not None else {}

    @property
    def person_of(self) -> dict[str, str]:
        """Record ref → person id (a dictionary of every record: built on first use)."""
        if self._person_of is None:
            refs, ids = self._arrays()
            self._person_of = dict(zip(refs.tolist(), ids.tolist(), strict=True))
        return self._person_of

    def person_ids(self, refs: Iterable[object]) -> ObjectArray:
        """The person id of each of ``refs`` (None for a ref not resolved), at array speed."""
        wanted = as_objects(refs, 0) if not isinstance(refs, np.ndarray) else refs
        if self._person_of is not None and self._refs is None:
            get = self._person_of.get
            return object_array([get(r) for r in wanted.tolist()])
        known, ids = self._arrays()
        if len(wanted) == len(known) and np.array_equal(wanted, known):
            copied: ObjectArray = ids.copy()  # the records resolved, in their order
            return copied
        at = (self._locate(wanted.tolist()) if self._locate is not None
              else pd.Index(known).get_indexer(wanted))
        out = np.full(len(wanted) + 1, None, dtype=object)
        out[:-1] = ids[at]
        out[:-1][at < 0] = None
        return out[:-1]

    def _arrays(self) -> tuple[ObjectArray, ObjectArray]:
        if self._refs is None or self._ids is None:
            mapping = self._person_of or {}
            return object_array(list(mapping)), object_array(list(mapping.values()))
        return self._refs, self._ids


def _probability(score: float) -> float:
    return 1.0 / (1.0 + math.pow(2.0, -score)) if score > -60 else 0.0


# Contract blocking keys are integers: the kind in the top bits, then the codes of the
# features' tables (stable while the tables live), each below 2**27.
_KEY_BITS = 27
_KEY_LIMIT = 1 << _KEY_BITS
_PASSPORT, _NAME_YEAR, _DATE_NATIONALITY, _NAME_EMPLOYER = (k << 54 for k in range(4))


@dataclass(frozen=True)
class ContractBlocking(BlockingRule):
    """The product's blocks (:func:`blocking_keys`): same passport; same name key and birth
    year; same full birth date and nationality; same name key at the same employer."""

    def keys(self, f: Features) -> tuple[IntArray, Keys]:
        name = f["name_key_code"]
        year, month, day = f["dob_year"], f["dob_month"], f["dob_day"]
        passport, nationality = f.codes("passport_number"), f.codes("nationality")
        ptr, employer = f["employer_ptr"], f["employer_code"]
        for codes in (name, nationality, employer):
            if len(codes) and int(codes.max()) >= _KEY_LIMIT:
                raise ValueError("too many distinct values for a blocking key")
        sigs: list[IntArray] = []
        keys: list[IntArray] = []
        has = np.flatnonzero(passport >= 0)
        sigs.append(has)
        keys.append(_PASSPORT | passport[has])
        has = np.flatnonzero((name >= 0) & (year >= 0))
        sigs.append(has)
        keys.append(_NAME_YEAR | (name[has] << _KEY_BITS) | year[has])
        has = np.flatnonzero((month > 0) & (nationality >= 0))
        date = year[has] * 372 + (month[has] - 1) * 31 + day[has] - 1
        sigs.append(has)
        keys.append(_DATE_NATIONALITY | (date << _KEY_BITS) | nationality[has])
        count = ptr[1:] - ptr[:-1]
        owner = np.repeat(np.arange(len(count)), count)
        has = np.flatnonzero(name[owner] >= 0)
        sigs.append(owner[has])
        keys.append(_NAME_EMPLOYER | (name[owner[has]] << _KEY_BITS) | employer[has])
        return np.concatenate(sigs).astype(np.int64), np.concatenate(keys).astype(np.int64)

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
Edges = list[tuple[int, int, float, dict[str, float]]]


@dataclass
class Prepared:
    """Steps 1 and 2 done: signatures, their features and the identifier clusters; the
    candidate pairs and their levels once computed (they do not depend on the weights, so
    training and resolution share them)."""

    frame: pd.DataFrame  # the records as given
    sig_codes: IntArray  # the signature of each record
    refs: ObjectArray  # each record's ref
    sigs: SigArrays
    features: Features
    labels: IntArray  # each signature's identifier cluster (one of its member signatures)
    components: IntArray  # each signature's identifier component (likewise)
    employers: IntArray  # each record's employer code
    pairs: tuple[IntArray, IntArray] | None = None
    levels: LevelMatrix | None = None

    @property
    def first_ref(self) -> ObjectArray:
        """The smallest record ref of each signature."""
        return self.sigs.first_ref

    def roots(self) -> IntArray:
        """Each signature's identifier cluster."""
        return self.labels


@dataclass
class Merged:
    """Steps 3 and 4 on a set of signatures: each one's cluster, and the links and doubts
    (``(i, j, probability, weights)``; i's first ref is the smaller)."""

    root: IntArray
    links: Edges
    doubts: Edges


class IdentityResolver:
    def __init__(self, auto_threshold: float = 0.99, review_threshold: float = 0.80,
                 max_block_size: int = 200, weights: WeightTable | None = None,
                 configuration: Configuration | None = None) -> None:
        self.auto_threshold = auto_threshold
        self.review_threshold = review_threshold
        self.max_block_size = max_block_size
        self.configuration = configuration or DEFAULT
        self.table = weights or WeightTable.from_match_weights(MatchWeights())
        # Term frequencies of names: by default counted over the signatures being resolved;
        # ``name_counts`` (token set -> signatures) gives those of a wider population.
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
        """The columns whose values make a signature (a record's ref too, under an
        ``exclusive`` configuration: every record of a clean file is its own)."""
        columns = [*IDENTITY_COLUMNS, *self.extra_columns]
        return [*columns, "ref"] if self.configuration.exclusive else columns

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
        with gc_paused():
            return self.resolve_prepared(self.prepare(records), previous)

    def resolve_prepared(self, prep: Prepared,
                         previous: Mapping[str, str] | None = None) -> Resolution:
        """Steps 3 to 5 on prepared records."""
        with gc_paused():
            return self._resolve_prepared(prep, previous)

    def _resolve_prepared(self, prep: Prepared,
                          previous: Mapping[str, str] | None) -> Resolution:
        f = prep.features
        i_all, j_all = self.candidate_pairs(prep)
        if prep.levels is not None:  # graded already (training)
            kept = np.arange(len(i_all))
            levels = prep.levels
        else:
            kept, levels = self.grade_bounded(f, i_all, j_all)
        i, j = i_all[kept], j_all[kept]
        score, tf = self.scores(f, i, j, levels)
        merged = self.merge(f, i, j, levels, score, tf, prep.labels)
        record_root = merged.root[prep.sig_codes]
        prev = None
        if previous:
            get = previous.get
            prev = object_array([get(r) for r in prep.refs.tolist()])
        resolution, _ = self.persons(prep.refs, record_root, prev, merged, prep.first_ref)
        resolution.stats.update({
            "records": len(prep.refs), "signatures": prep.sigs.n,
            "candidate_pairs": len(i_all), "scored_links": len(merged.links),
            "review_links": len(merged.doubts)})
        return resolution

    def prepare(self, records: pd.DataFrame, tables: Tables | None = None) -> Prepared:
        """Steps 1 and 2: signatures, their features, and the identifier clusters."""
        columns = [c for c in self.signature_columns if c in records.columns]
        with gc_paused():
            sigs, sig_codes, refs, employers = group_records(records, columns,
                                                             tables or Tables())
            features = self.features(sigs)
            components, labels = id_structure(features["id_valid"], sigs.first_ref,
                                              self.exclusive_codes(features))
        return Prepared(frame=records, sig_codes=sig_codes, refs=refs, sigs=sigs,
                        features=features, labels=labels, components=components,
                        employers=employers)

    def exclusive_codes(self, f: Features) -> IntArray | None:
        exclusive = self.configuration.exclusive
        return f.codes(exclusive) if exclusive else None

    def candidate_pairs(self, prep: Prepared) -> tuple[IntArray, IntArray]:
        """The pairs to score, each ordered by its signatures' first refs. Computed once
        per :class:`Prepared`."""
        if prep.pairs is None:
            f, n = prep.features, prep.sigs.n
            parts = []
            for codes in self.block_candidates(prep):
                keep = self.worth_scoring(f, codes // n, codes % n, prep.labels)
                parts.append(codes[keep])
            ti, tj = self.typo_pairs(f, prep.labels)
            parts.append(np.minimum(ti, tj) * n + np.maximum(ti, tj))
            codes = unique(np.concatenate(parts))
            lo, hi = codes // n, codes % n
            keep = self.not_exclusive(f, lo, hi)
            prep.pairs = self.oriented(prep.first_ref, lo[keep], hi[keep])
        return prep.pairs

    def block_candidates(self, prep: Prepared) -> Iterator[IntArray]:
        """Pairs (codes ``lo * n + hi``) of signatures sharing a block of 2 to
        ``max_block_size`` that :meth:`worth_scoring` may keep: those holding no valid
        identifier of a common kind, those sharing a passport, and those of one identifier
        component split into clusters. Any other pair of a block holds two different
        identifiers of one kind and no common passport — most of a national run's blocks
        (look-alikes: same name key and birth year, same birth date and nationality) —
        and is never listed."""
        f, n = prep.features, prep.sigs.n
        sig, keys = self.blocking_keys(f)
        if not len(sig):
            return
        block = pd.factorize(keys)[0].astype(np.int64)
        sizes = np.bincount(block)
        fine = ((sizes >= 2) & (sizes <= self.max_block_size))[block]
        sig, block = sig[fine], block[fine]
        mask = ((f["id_valid"] >= 0) * np.array([1, 2, 4])).sum(axis=1)[sig]
        order = np.lexsort((sig, block, mask))
        mask, block, sig = mask[order], block[order], sig[order]
        group = np.searchsorted(mask, np.arange(9))
        for a in range(8):
            block_a, sig_a = block[group[a]:group[a + 1]], sig[group[a]:group[a + 1]]
            for b in range(a, 8):
                if a & b:
                    continue
                if a == b:
                    yield _block_triangle(block_a, sig_a, n, ordered=True)
                else:
                    yield _block_cross(block_a, sig_a, block[group[b]:group[b + 1]],
                                       sig[group[b]:group[b + 1]], n)
        # a shared passport: all of its bearers once (its own block), and where that block
        # is too large, the bearers sharing another block
        codes = f.codes("passport_number")
        holders = np.flatnonzero(codes >= 0)
        count = np.bincount(codes[holders])
        alone = count[codes[holders]]
        own = holders[(alone >= 2) & (alone <= self.max_block_size)]
        yield _block_triangle(codes[own], own, n)
        passport = codes[sig]
        crowded = passport >= 0
        crowded[crowded] = count[passport[crowded]] > self.max_block_size
        if crowded.any():
            sub = block[crowded] * (int(passport.max()) + 1) + passport[crowded]
            yield _block_triangle(sub, sig[crowded], n)
        split = prep.components != prep.labels
        if split.any():
            conflicted = np.zeros(n, dtype=bool)
            conflicted[prep.components[split]] = True
            component = prep.components[sig]
            inside = conflicted[component]
            yield _block_triangle(block[inside] * n + component[inside], sig[inside], n)

    def blocking_keys(self, f: Features) -> tuple[IntArray, Keys | npt.NDArray[Any]]:
        """Every (signature, key) of every blocking rule."""
        sigs: list[IntArray] = []
        keys: list[Any] = []
        for rule in self.configuration.blocking:
            sig, rule_keys = rule.keys(f)
            sigs.append(sig)
            keys.append(rule_keys)
        if not sigs:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        if all(isinstance(k, np.ndarray) and k.dtype.kind in "iu" for k in keys):
            return np.concatenate(sigs), np.concatenate(keys).astype(np.int64)
        joined = np.empty(sum(len(k) for k in keys), dtype=object)
        at = 0
        for k in keys:
            joined[at:at + len(k)] = list(k) if not isinstance(k, np.ndarray) else k.tolist()
            at += len(k)
        return np.concatenate(sigs), joined

    @staticmethod
    def worth_scoring(f: Features, i: IntArray, j: IntArray, labels: IntArray) -> IntArray:
        """Pairs not already one identifier cluster, and not hopeless: two different valid
        identifiers of one kind and no shared passport cannot reach the review band (the
        conflict outweighs every agreement but a passport) — most of a look-alike block,
        never scored."""
        keep: IntArray = labels[i] != labels[j]
        at = np.flatnonzero(keep)
        i, j = i[at], j[at]
        conflict = np.zeros(len(at), dtype=bool)
        valid = f["id_valid"]
        for k in range(valid.shape[1]):
            a, b = valid[i, k], valid[j, k]
            conflict |= (a >= 0) & (b >= 0) & (a != b)
        at, i, j = at[conflict], i[conflict], j[conflict]
        passport = f.codes("passport_number")
        keep[at[(passport[i] < 0) | (passport[i] != passport[j])]] = False
        return keep

    def not_exclusive(self, f: Features, i: IntArray, j: IntArray) -> IntArray:
        """Pairs not of one file under an ``exclusive`` configuration."""
        files = self.exclusive_codes(f)
        if files is None:
            return np.ones(len(i), dtype=bool)
        keep: IntArray = (files[i] != files[j]) | (files[i] < 0)
        return keep

    @staticmethod
    def oriented(first_ref: ObjectArray, lo: IntArray, hi: IntArray) -> tuple[IntArray, IntArray]:
        """The pairs with the signature of the smaller first ref first."""
        swap = np.asarray(first_ref[lo] > first_ref[hi], dtype=bool)
        return np.where(swap, hi, lo), np.where(swap, lo, hi)

    def typo_pairs(self, f: Features, labels: IntArray,
                   only: IntArray | None = None) -> tuple[IntArray, IntArray]:
        """Pair each identifier that fails its check with the valid identifiers one keystroke
        away (of ``only``'s signatures, if given): about a hundred look-ups per bad
        identifier, not a scan. (A Luhn digit catches every single-digit error and most
        neighbour swaps, so the typos that matter are exactly the ones marked invalid.) A
        value held by more than ``max_block_size`` signatures is skipped, like a block."""
        raw, valid = f["id_raw"], f["id_valid"]
        strings = f["id_strings"]
        tables: Tables | None = getattr(f.sigs, "tables", None)
        pi: list[int] = []
        pj: list[int] = []
        for k, kind in enumerate(STRONG_KINDS):
            bad = (raw[:, k] >= 0) & (valid[:, k] < 0)
            if only is not None:
                mask = np.zeros(len(bad), dtype=bool)
                mask[only] = True
                bad &= mask
            if not bad.any():
                continue
            holders = np.flatnonzero(valid[:, k] >= 0)
            by_value = holders[np.argsort(valid[holders, k], kind="stable")]
            held = valid[by_value, k]
            owners: list[int] = []
            repairs: list[str] = []
            for s in np.flatnonzero(bad).tolist():
                value = strings[k][raw[s, k]]
                if value.isdigit():
                    more = keystroke_repairs(value)
                    owners.extend([s] * len(more))
                    repairs.extend(more)
            if tables is not None:
                codes = tables.column(kind).lookup(repairs)
            else:
                index = {v: c for c, v in enumerate(strings[k].tolist())}
                codes = np.array([index.get(x, -1) for x in repairs], dtype=np.int64)
            known = np.flatnonzero(codes >= 0)
            lo = np.searchsorted(held, codes[known])
            hi = np.searchsorted(held, codes[known], side="right")
            for s, a, b in zip(np.asarray(owners)[known].tolist(), lo.tolist(), hi.tolist(),
                               strict=True):
                if b - a > self.max_block_size:
                    continue
                for t in by_value[a:b].tolist():
                    if labels[s] != labels[t]:
                        pi.append(s)
                        pj.append(t)
        return np.asarray(pi, dtype=np.int64), np.asarray(pj, dtype=np.int64)

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

    def grade_bounded(self, f: Features, i: IntArray,
                      j: IntArray) -> tuple[IntArray, LevelMatrix]:
        """The pairs that can still reach the review band once the cheap comparisons are
        graded, and their levels: the expensive ones (names) are graded only for those.
        The bound is exact — every other pair scores below the band whatever its name."""
        comparisons = self.configuration.comparisons
        table = self.table
        levels = np.zeros((len(i), len(comparisons)), dtype=np.int8)
        partial = np.full(len(i), table.prior, dtype=np.float64)
        headroom = 0.0
        for col, comparison in enumerate(comparisons):
            weights = self._weights(comparison)
            if type(comparison).term_frequency is not Comparison.term_frequency:
                headroom += max(table.tf_ceiling, 0.0) + 0.01
            if comparison.expensive:
                headroom += float(weights.max())
            else:
                levels[:, col] = comparison.grade(f, i, j)
                partial += weights[levels[:, col]]
        alive = np.flatnonzero(partial + headroom >= _score_bound(self.review_threshold) - 1e-3)
        levels = levels[alive]
        for col, comparison in enumerate(comparisons):
            if comparison.expensive:
                levels[:, col] = comparison.grade(f, i[alive], j[alive])
        return alive, levels

    def _weights(self, comparison: Comparison) -> FloatArray:
        return np.array([self.table.weights.get((comparison.name, lv), 0.0)
                         for lv in comparison.levels], dtype=np.float64)

    def scores(self, f: Features, i: IntArray, j: IntArray,
               levels: LevelMatrix) -> tuple[FloatArray, FloatArray]:
        """Each pair's score — the prior plus its levels' weights, summed in the order of
        the comparisons, plus the term-frequency adjustment — and that adjustment."""
        table = self.table
        score = np.full(len(i), table.prior, dtype=np.float64)
        tf = np.zeros(len(i), dtype=np.float64)
        for col, comparison in enumerate(self.configuration.comparisons):
            score += self._weights(comparison)[levels[:, col]]
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

    def merge(self, f: Features, i: IntArray, j: IntArray, levels: LevelMatrix,
              score: FloatArray, tf: FloatArray, labels: IntArray) -> Merged:
        """Steps 3 and 4 over scored pairs: best first (equal scores in the order of their
        signatures' first refs), links at the auto threshold merge the identifier clusters
        (``labels``) unless that joins two identifiers of one kind; review-band links that
        do not are doubts."""
        first_ref: ObjectArray = f.sigs.first_ref
        keep = np.flatnonzero(score >= _score_bound(self.review_threshold) - 1e-6)
        ends = unique(np.concatenate([i[keep], j[keep]]))
        rank = np.empty(len(ends), dtype=np.int64)
        rank[np.argsort(first_ref[ends].astype(str), kind="stable")] = np.arange(len(ends))
        ri = rank[np.searchsorted(ends, i[keep])]
        rj = rank[np.searchsorted(ends, j[keep])]
        order = keep[np.lexsort((rj, ri, -score[keep]))]
        clusters = UnionFind(cluster_identity(labels, f["id_valid"], self.exclusive_codes(f)))
        links: Edges = []
        doubts: Edges = []
        for k in order.tolist():
            p = _probability(float(score[k]))
            if p < self.review_threshold:
                break
            a, b = int(i[k]), int(j[k])
            la, lb = int(labels[a]), int(labels[b])
            if p >= self.auto_threshold and clusters.union(la, lb):
                links.append((a, b, p, self.explain(levels[k], float(tf[k]))))
            elif clusters.find(la) != clusters.find(lb):
                doubts.append((a, b, p, self.explain(levels[k], float(tf[k]))))
        root = labels
        if clusters.parent:
            remap = np.arange(len(labels), dtype=np.int64)
            moved = np.fromiter(clusters.parent, dtype=np.int64, count=len(clusters.parent))
            remap[moved] = [clusters.find(int(x)) for x in moved.tolist()]
            root = remap[labels]
        return Merged(root=root, links=links, doubts=doubts)

    def persons(self, refs: ObjectArray, record_root: IntArray, previous: ObjectArray | None,
                merged: Merged, first_ref: ObjectArray,
                held: Container[str] = frozenset()) -> tuple[Resolution, ObjectArray]:
        """Step 5: the persons of the records (``record_root``: each record's cluster), named
        by :func:`name_persons`, with the links and doubts of ``merged``; and each record's
        person id."""
        roots, ids, of_record, order, starts = name_persons(record_root, refs, previous, held)
        record_ids = ids[of_record]
        place = {int(r): k for k, r in enumerate(roots.tolist())}
        details: dict[str, Details] = {}

        def of(k: int) -> Details:
            found = details.get(ids[k])
            if found is None:
                found = details[ids[k]] = Details()
            return found

        root = merged.root
        for a, b, p, weights in merged.links:
            own = of(place[int(root[a])])
            own.confidence = min(own.confidence, p)
            own.links.append(Link(first_ref[a], first_ref[b], p, weights))
        for a, b, p, weights in merged.doubts:
            ka, kb = place[int(root[a])], place[int(root[b])]
            if ka == kb:
                continue
            link = Link(first_ref[a], first_ref[b], p, weights)
            of(ka).doubts.append(link)
            of(kb).doubts.append(link)
        persons = Persons(ids, refs[order], starts, details)
        return Resolution(persons=persons, stats={"persons": len(ids)}, refs=refs,
                          ids=record_ids), record_ids

    # -- features -------------------------------------------------------------------------

    def features(self, sigs: SigArrays, nameset_counts: IntArray | None = None) -> Features:
        """The contract's per-signature features over ``sigs``, each computed when first
        needed (a configuration that never reads a name never tokenises one). Term
        frequencies count the signatures of ``sigs`` unless ``nameset_counts`` (per token
        set code) or :attr:`name_counts` give those of a wider population."""
        tables = sigs.tables

        def gather(values: IntArray, codes: IntArray, missing: int = -1) -> IntArray:
            out: IntArray = np.where(codes >= 0, values[np.maximum(codes, 0)], missing) \
                if len(values) else np.full(len(codes), missing, dtype=np.int64)
            return out

        def name_code(_f: Features) -> IntArray:
            # the Latin name's tokens; the Arabic name romanised where there are none
            en_codes = sigs.codes("name_en")
            en = gather(tables.name_codes("name_en", en_codes), en_codes)
            missing = np.flatnonzero(en < 0)
            ar_codes = sigs.codes("name_ar")[missing]
            en[missing] = gather(tables.name_codes("name_ar", ar_codes), ar_codes)
            return en

        def name_key_code(f: Features) -> IntArray:
            codes = f["name_code"]  # first: it fills the name table
            return gather(tables.names.arrays()[0], codes)

        def nameset(f: Features) -> IntArray:
            codes = f["name_code"]
            return gather(tables.names.arrays()[1], codes)

        def name_tf(f: Features) -> FloatArray:
            sets: IntArray = f["nameset"]
            present = sets >= 0
            if self.name_counts is not None:
                distinct = unique(sets[present])
                counts = np.zeros(int(sets.max()) + 1 if present.any() else 0, dtype=np.int64)
                get = self.name_counts.get
                counts[distinct] = [get(frozenset(tables.names.sets[c]), 1)
                                    for c in distinct.tolist()]
            elif nameset_counts is not None:
                counts = nameset_counts
            else:
                counts = np.bincount(sets[present])
            count = np.where(present, counts[np.maximum(sets, 0)] if len(counts) else 1, 1)
            distinct = unique(count)
            weight = np.array([self.name_tf(int(c), self.tf_typical) for c in distinct.tolist()])
            return np.where(present, weight[np.searchsorted(distinct, count)], 0.0)

        def dob(part: int) -> Any:
            def build(_f: Features) -> Any:
                arrays = tables.dob_arrays()
                codes = sigs.codes("date_of_birth")
                if part == 3:
                    low = arrays[3]
                    return np.where(codes >= 0, low[np.maximum(codes, 0)] if len(low) else False,
                                    False)
                values: IntArray = arrays[part]  # type: ignore[assignment]
                return gather(values, codes, -1 if part == 0 else 0)
            return build

        def id_raw(_f: Features) -> IntArray:
            return np.stack([sigs.codes(k) for k in STRONG_KINDS], axis=1)

        def id_valid(f: Features) -> IntArray:
            invalid = sigs.codes("invalid_ids")
            flags = tables.invalid_flags()
            bad = np.zeros((sigs.n, len(STRONG_KINDS)), dtype=bool)
            has = np.flatnonzero(invalid >= 0)
            bad[has] = flags[invalid[has]]
            raw: IntArray = f["id_raw"]
            return np.where(bad, -1, raw)

        def compat(name: str) -> Any:
            # the features as per-signature Python values (for callers reading them so)
            def build(f: Features) -> Any:
                if name == "tokens":
                    names = tables.names.tokens
                    return [names[c] if c >= 0 else () for c in f["name_code"].tolist()]
                if name == "name_key":
                    keys = tables.names.keys.values
                    return [keys[c] if c >= 0 else None for c in f["name_key_code"].tolist()]
                if name == "dob":
                    tables.dob_arrays()
                    parsed = tables.birth_dates.parsed
                    return [parsed[c] if c >= 0 else None
                            for c in sigs.codes("date_of_birth").tolist()]
                if name in ("ids", "raw_ids"):
                    codes = f["id_valid" if name == "ids" else "id_raw"]
                    strings = f["id_strings"]
                    return [{k: strings[n][c] for n, (k, c) in
                             enumerate(zip(STRONG_KINDS, row, strict=True)) if c >= 0}
                            for row in codes.tolist()]
                if name == "employers":
                    ptr, emp = sigs.employer_ptr, sigs.employer_code
                    values = tables.column("employer_id").values
                    return [frozenset(values[e] for e in emp[ptr[s]:ptr[s + 1]].tolist())
                            for s in range(sigs.n)]
                column = {"passport": "passport_number"}.get(name, name)
                return f.values(column).tolist()
            return build

        builders: dict[str, Any] = {
            "name_code": name_code, "name_key_code": name_key_code, "nameset": nameset,
            "name_table": lambda _f: tables.names, "name_tf": name_tf,
            "dob_year": dob(0), "dob_month": dob(1), "dob_day": dob(2), "dob_low": dob(3),
            "id_raw": id_raw, "id_valid": id_valid,
            "id_strings": lambda _f: [tables.column(k).array() for k in STRONG_KINDS],
            "employer_ptr": lambda _f: sigs.employer_ptr,
            "employer_code": lambda _f: sigs.employer_code,
        }
        for name in ("tokens", "name_key", "dob", "ids", "raw_ids", "employers", "passport",
                     "nationality", "sex"):
            builders[name] = compat(name)
        return Features(sigs, builders)


def _block_triangle(block: IntArray, sig: IntArray, n: int, ordered: bool = False) -> IntArray:
    """Every pair of signatures of one block, as codes ``lo * n + hi`` (``ordered``: the
    entries are sorted by block already)."""
    if not ordered:
        order = np.lexsort((sig, block))
        block, sig = block[order], sig[order]
    ends = np.searchsorted(block, block, side="right")
    partners = ends - np.arange(len(block)) - 1
    left = np.repeat(np.arange(len(block)), partners)
    within = np.arange(len(left)) - np.repeat(np.cumsum(partners) - partners, partners)
    a, b = sig[left], sig[left + within + 1]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    keep = lo != hi
    codes: IntArray = lo[keep] * n + hi[keep]
    return codes


def _block_cross(block_a: IntArray, sig_a: IntArray, block_b: IntArray, sig_b: IntArray,
                 n: int) -> IntArray:
    """Every pair of a signature of ``a`` and one of ``b`` in one block (``block_b``
    sorted)."""
    if not len(block_a) or not len(block_b):
        return np.empty(0, dtype=np.int64)
    start = np.searchsorted(block_b, block_a)
    partners = np.searchsorted(block_b, block_a, side="right") - start
    left = np.repeat(sig_a, partners)
    within = np.arange(len(left)) - np.repeat(np.cumsum(partners) - partners, partners)
    right = sig_b[np.repeat(start, partners) + within]
    lo, hi = np.minimum(left, right), np.maximum(left, right)
    keep = lo != hi
    codes: IntArray = lo[keep] * n + hi[keep]
    return codes


def name_persons(record_root: IntArray, refs: ObjectArray, previous: ObjectArray | None,
                 held: Container[str] = frozenset(),
                 ) -> tuple[IntArray, ObjectArray, IntArray, IntArray, IntArray]:
    """Name each cluster of records: it keeps last run's id where most of its records had
    it, largest clusters first (then by smallest ref), an id going to one cluster only;
    otherwise its id derives from its smallest record ref (so a re-run gives the same
    ids) — unless some cluster was voted that id, or a person not named here ``held`` it:
    then from that ref and a counter.

    Returns the clusters (``record_root`` values), their ids, each record's cluster index,
    and the records ordered by cluster with each cluster's start (CSR)."""
    codes, roots = pd.factorize(record_root)
    of_record = codes.astype(np.int64)
    count = len(roots)
    order = np.argsort(of_record, kind="stable")
    starts = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(np.bincount(of_record, minlength=count), out=starts[1:])
    min_ref = (np.minimum.reduceat(refs[order], starts[:-1]) if count
               else np.empty(0, dtype=object))
    size = starts[1:] - starts[:-1]
    ids = np.empty(count, dtype=object)
    if previous is None:
        previous = np.full(len(refs), None, dtype=object)
    has = np.flatnonzero(previous != None)  # noqa: E711
    pid_codes, found = pd.factorize(previous[has]) if len(has) else (has, [])
    pids = object_array(list(found))
    voted = set(pids.tolist())
    minted: set[str] = set()

    def mint(ref: str) -> str:
        pid, k = mint_person_id(ref), 1
        while pid in voted or pid in minted or pid in held:
            k += 1
            pid = mint_person_id(f"{ref}#{k}")
        minted.add(pid)
        return pid

    width = max(len(pids), 1)
    votes, counts = unique_counts(of_record[has] * width + pid_codes)
    vroot, vpid = votes // width, votes % width
    pid_rank = np.empty(len(pids), dtype=np.int64)
    pid_rank[np.argsort(pids.astype(str), kind="stable")] = np.arange(len(pids))
    ranked = np.lexsort((pid_rank[vpid], -counts, vroot))
    vroot, vpid = vroot[ranked], vpid[ranked]
    first = np.flatnonzero(np.r_[True, vroot[1:] != vroot[:-1]]) if len(vroot) else vroot
    voters = np.bincount(vpid, minlength=len(pids))
    contested = np.zeros(count, dtype=bool)
    contested[vroot[voters[vpid] > 1]] = True
    with_votes = np.zeros(count, dtype=bool)
    with_votes[vroot] = True
    simple = first[~contested[vroot[first]]]
    ids[vroot[simple]] = pids[vpid[simple]]
    minting = np.flatnonzero(~with_votes)
    ids[minting] = [mint(r) for r in min_ref[minting].tolist()]
    hard = np.flatnonzero(contested)
    if len(hard):
        # clusters that want a common id: one by one, largest first, then smallest ref
        taken: set[str] = set()
        candidates: dict[int, list[str]] = {}
        for r, p in zip(vroot.tolist(), vpid.tolist(), strict=True):
            if contested[r]:
                candidates.setdefault(r, []).append(pids[p])
        for r in sorted(hard.tolist(), key=lambda r: (-size[r], min_ref[r])):
            name = next((p for p in candidates[r] if p not in taken), None)
            ids[r] = name if name is not None else mint(min_ref[r])
            taken.add(ids[r])
    return np.asarray(roots, dtype=np.int64), ids, of_record, order, starts


@dataclass
class Details:
    """What holds a person together beyond identifiers: its weakest link, its links, and
    its doubts (review-band links to other persons)."""

    confidence: float = 1.0
    links: list[Link] = field(default_factory=list)
    doubts: list[Link] = field(default_factory=list)


class Persons(Mapping[str, Person]):
    """The persons of a resolution, each built when first looked at: a run at national
    scale has a million, and a run reads only those with a finding. ``ids[k]`` holds
    ``refs[starts[k]:starts[k + 1]]``; ``details``: of the persons with links or doubts."""

    def __init__(self, ids: ObjectArray, refs: ObjectArray, starts: IntArray,
                 details: Mapping[str, Details]) -> None:
        self._ids = ids
        self._refs = refs
        self._starts = starts
        self._details = details
        self._place: dict[str, int] | None = None
        self._built: dict[int, Person] = {}

    def _index(self) -> dict[str, int]:
        if self._place is None:
            self._place = {pid: k for k, pid in enumerate(self._ids.tolist())}
        return self._place

    def __getitem__(self, pid: str) -> Person:
        k = self._index()[pid]
        person = self._built.get(k)
        if person is None:
            refs = sorted(self._refs[self._starts[k]:self._starts[k + 1]].tolist())
            held = self._details.get(pid)
            person = (Person(pid, refs, held.confidence, list(held.links), list(held.doubts))
                      if held is not None else Person(pid, refs, 1.0))
            self._built[k] = person
        return person

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids.tolist())

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, pid: object) -> bool:
        return pid in self._index()

    @property
    def details(self) -> Mapping[str, Details]:
        return self._details


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
