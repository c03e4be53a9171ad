"""The resolver's model as small declarative parts: comparisons and blocking rules.

A **comparison** grades a candidate pair of signatures on one piece of evidence into one of
its ordered *levels* — best first, the last one ``"-"``: a side is empty, no evidence
either way. The weight of each level, a log₂ Bayes factor log₂(m/u), lives in the
:class:`~reconciler.identity.resolve.WeightTable` under ``(comparison name, level)``:
hand-set for the product, or estimated from the data (``reconciler.identity.training``).
Grading is vectorised: ``grade(features, i, j)`` takes two arrays of signature indexes
and returns one level index per pair.

A **blocking rule** gives each signature its keys; signatures sharing a key are candidate
pairs (blocks larger than the resolver's ``max_block_size`` are skipped).

A :class:`Configuration` is a list of comparisons, a list of blocking rules and, for a
link between files known to hold no duplicates, the ``exclusive`` column (a person holds
at most one record per value of it). :data:`DEFAULT` is the product's, exactly the
comparisons and blocks the resolver has always used; a configuration for another data set
adds its own (``benchmarks/febrl4.py`` adds addresses and postcodes), which cannot change
what the default does.

Two families of comparisons:

* the contract's (:class:`IdentifierConflict`, :class:`NameSimilarity`,
  :class:`BirthDateAgreement`, :class:`IdentifierTypo`, :class:`SharedEmployer`, and
  :class:`ExactMatch` on nationality, sex, passport), which read the features the resolver
  derives from the contract's identity columns (name tokens, parsed birth dates, valid
  identifiers);
* generic ones on any column, like Splink's comparison library: :class:`ExactMatch`,
  :class:`StringSimilarity` (Jaro–Winkler at thresholds) and :class:`EditDistance`
  (Damerau–Levenshtein at thresholds), computed with ``rapidfuzz.process.cpdist`` over the
  whole pair list.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler

from reconciler.identity.normalize import BirthDate, birth_date_agreement, name_similarity

IntArray = npt.NDArray[np.int64]
LevelArray = npt.NDArray[np.int8]
FloatArray = npt.NDArray[np.float64]
ObjectArray = npt.NDArray[np.object_]

NO_EVIDENCE = "-"


class Features(Mapping[str, Any]):
    """Per-signature data, each entry computed on first use: the contract's features
    (``builders``, e.g. name tokens) and any column's values (:meth:`values`). A
    configuration that compares no names never tokenises one."""

    def __init__(self, sigs: pd.DataFrame,
                 builders: Mapping[str, Callable[[Features], Any]]) -> None:
        self.sigs = sigs
        self._builders = builders
        self._cache: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key not in self._cache:
            if key not in self._builders:
                raise KeyError(key)
            self._cache[key] = self._builders[key](self)
        return self._cache[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._builders)

    def __len__(self) -> int:
        return len(self._builders)

    def values(self, column: str) -> ObjectArray:  # type: ignore[override]
        """The column as an object array of strings, ``None`` where missing (None, NaN
        or the empty string)."""
        key = "values:" + column
        if key not in self._cache:
            n = len(self.sigs)
            raw = (self.sigs[column].to_numpy(dtype=object) if column in self.sigs.columns
                   else np.full(n, None, dtype=object))
            missing = pd.isna(raw)
            out = np.empty(n, dtype=object)
            out[:] = [None if m or v == "" else v if isinstance(v, str) else str(v)
                      for v, m in zip(raw.tolist(), missing.tolist(), strict=True)]
            self._cache[key] = out
        return self._cache[key]  # type: ignore[no-any-return]

    def present(self, column: str) -> npt.NDArray[np.bool_]:
        key = "present:" + column
        if key not in self._cache:
            self._cache[key] = np.array([v is not None for v in self.values(column)],
                                        dtype=bool)
        return self._cache[key]  # type: ignore[no-any-return]

    def truthy(self, key: str) -> npt.NDArray[np.bool_]:
        """Which signatures have a non-empty value of the feature ``key``."""
        cache = "truthy:" + key
        if cache not in self._cache:
            self._cache[cache] = np.fromiter((bool(v) for v in self[key]), dtype=bool,
                                             count=len(self.sigs))
        return self._cache[cache]  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------
# Comparisons
# --------------------------------------------------------------------------------------


class Comparison(ABC):
    """One piece of evidence: a name, ordered levels (best first, ``"-"`` last) and how a
    pair is graded into them."""

    name: str
    levels: tuple[str, ...]
    words: Mapping[str, str]  # level -> how an officer reads it ("name close")
    columns: tuple[str, ...] = ()  # record columns read beyond the contract's

    @abstractmethod
    def grade(self, f: Features, i: IntArray, j: IntArray) -> LevelArray:
        """The index (in :attr:`levels`) of each pair's level."""

    def term_frequency(self, f: Features, i: IntArray, j: IntArray,
                       levels: LevelArray) -> FloatArray | None:
        """An adjustment added to the score (a common value agreeing counts for less), or
        None. Only the contract's name has one."""
        return None

    def describe(self, level: str) -> str:
        return self.words.get(level, f"{self.name} {level}")

    def m_start(self) -> list[float]:
        """Where EM starts m when there are no known matches: agreement likeliest,
        each weaker level a quarter as likely, no evidence at an even share."""
        graded = [lv for lv in self.levels if lv != NO_EVIDENCE]
        raw = [4.0 ** -k for k in range(len(graded))]
        share = 1.0 / len(self.levels) if NO_EVIDENCE in self.levels else 0.0
        scale = (1.0 - share) / sum(raw)
        it = iter(raw)
        return [share if lv == NO_EVIDENCE else next(it) * scale for lv in self.levels]

    def _pairs_with_both(self, has: npt.NDArray[np.bool_], i: IntArray,
                         j: IntArray) -> tuple[LevelArray, IntArray]:
        """Every pair graded ``"-"`` to start with, and the positions of the pairs whose two
        sides both have a value."""
        out = np.full(len(i), self.levels.index(NO_EVIDENCE), dtype=np.int8)
        return out, np.flatnonzero(has[i] & has[j])


@dataclass(frozen=True)
class ExactMatch(Comparison):
    """Same value or not. ``disagreement=False``: a differing value is no evidence (a
    renewed passport says nothing against the person)."""

    column: str
    name: str = ""
    disagreement: bool = True
    words: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.column)

    @cached_property
    def levels(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("same", "differs", NO_EVIDENCE) if self.disagreement else ("same", NO_EVIDENCE)

    @cached_property
    def columns(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.column,)

    def grade(self, f: Features, i: IntArray, j: IntArray) -> LevelArray:
        values = f.values(self.column)
        out, both = self._pairs_with_both(f.present(self.column), i, j)
        same = values[i[both]] == values[j[both]]
        if self.disagreement:
            out[both] = np.where(same, 0, 1)
        else:
            out[both[same]] = 0
        return out


def _graded(out: LevelArray, both: IntArray, same: npt.NDArray[np.bool_],
            passes: list[npt.NDArray[np.bool_]]) -> LevelArray:
    """Levels ``same``, then one per threshold (``passes[k]``: the pair meets threshold k,
    strictest first), then ``differs``."""
    graded = np.full(len(both), len(passes) + 1, dtype=np.int8)
    for k in range(len(passes) - 1, -1, -1):
        graded[passes[k]] = k + 1
    graded[same] = 0
    out[both] = graded
    return out


@dataclass(frozen=True)
class StringSimilarity(Comparison):
    """Jaro–Winkler similarity at thresholds (strictest first): levels ``same``,
    ``≥t`` per threshold, ``differs``, ``-``. Splink's ``NameComparison`` uses 0.92, 0.88
    and 0.70."""

    column: str
    thresholds: tuple[float, ...] = (0.92, 0.88, 0.70)
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.column)
        if list(self.thresholds) != sorted(self.thresholds, reverse=True):
            raise ValueError("thresholds go strictest (highest) first")

    @cached_property
    def levels(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("same", *(f"≥{t:g}" for t in self.thresholds), "differs", NO_EVIDENCE)

    @cached_property
    def columns(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.column,)

    @cached_property
    def words(self) -> Mapping[str, str]:  # type: ignore[override]
        out = {"same": f"{self.name} same", "differs": f"{self.name} differs"}
        out.update({f"≥{t:g}": f"{self.name} similar (Jaro–Winkler ≥ {t:g})"
                    for t in self.thresholds})
        return out

    def grade(self, f: Features, i: IntArray, j: IntArray) -> LevelArray:
        values = f.values(self.column)
        out, both = self._pairs_with_both(f.present(self.column), i, j)
        x, y = values[i[both]], values[j[both]]
        sim = process.cpdist(x.tolist(), y.tolist(), scorer=JaroWinkler.normalized_similarity,
                             dtype=np.float64)
        return _graded(out, both, x == y, [sim >= t for t in self.thresholds])


@dataclass(frozen=True)
class EditDistance(Comparison):
    """Damerau–Levenshtein distance at thresholds (smallest first): levels ``same``,
    ``≤k`` per threshold, ``differs``, ``-`` — for codes and numbers, where a typo is one
    edit (Splink's ``DamerauLevenshteinAtThresholds``)."""

    column: str
    thresholds: tuple[int, ...] = (1, 2)
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.column)
        if list(self.thresholds) != sorted(self.thresholds):
            raise ValueError("thresholds go strictest (smallest) first")

    @cached_property
    def levels(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("same", *(f"≤{t}" for t in self.thresholds), "differs", NO_EVIDENCE)

    @cached_property
    def columns(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.column,)

    @cached_property
    def words(self) -> Mapping[str, str]:  # type: ignore[override]
        out = {"same": f"{self.name} same", "differs": f"{self.name} differs"}
        out.update({f"≤{t}": f"{self.name} {t} edit{'s' if t > 1 else ''} apart"
                    for t in self.thresholds})
        return out

    def grade(self, f: Features, i: IntArray, j: IntArray) -> LevelArray:
        values = f.values(self.column)
        out, both = self._pairs_with_both(f.present(self.column), i, j)
        x, y = values[i[both]], values[j[both]]
        cutoff = self.thresholds[-1] + 1
        dist = process.cpdist(x.tolist(), y.tolist(), scorer=DamerauLevenshtein.distance,
                              score_cutoff=cutoff, dtype=np.int64)
        return _graded(out, both, x == y, [dist <= t for t in self.thresholds])


# -- the contract's comparisons --------------------------------------------------------
# Each reads the resolver's features of the contract's identity columns and grades exactly
# as the resolver always has; DEFAULT lists them in the order their weights are summed.


@dataclass(frozen=True)
class IdentifierConflict(Comparison):
    """Two different valid identifiers of one kind (national ID, residence ID, border
    number): ``conflict``, else no evidence."""

    name: str = "identifier"
    levels: tuple[str, ...] = ("conflict", NO_EVIDENCE)
    words: Mapping[str, str] = field(
        default_factory=lambda: {"conflict": "identifiers differ"})

    def grade(self, f: Features, i: IntArray, j: IntArray) -> LevelArray:
        ids = f["ids"]
        out, both = self._pairs_with_both(f.truthy("ids"), i, j)
        for k in both.tolist():
            a, b = ids[i[k]], ids[j[k]]
            if any(b.get(kind, value) != value for kind, value in a.items()):
                out[k] = 0
        return out


@dataclass(frozen=True)
class NameSimilarity(Comparison):
    """The contract's name: :func:`~reconciler.identity.normalize.name_similarity` over the
    name tokens (order-, transliteration- and initial-tolerant) at ``thresholds``, and the
    term-frequency adjustment when the names are the same."""

    name: str = "name"
    thresholds: tuple[float, ...] = (0.97, 0.90, 0.80, 0.65)
    levels: tuple[str, ...] = ("same", "close", "similar", "weak", "differs", NO_EVIDENCE)
    words: Mapping[str, str] = field(default_factory=lambda: {
        "same": "name same", "close": "name close", "similar": "name similar",
        "weak": "name weakly similar", "differs": "name differs"})

    def grade(self, f: Features, i: IntArray, j: IntArray) -> LevelArray:
        tokens = f["tokens"]
        out, both = self._pairs_with_both(f.truthy("tokens"), i, j)
        thresholds = self.thresholds
        differs = len(thresholds)
        for k in both.tolist():
            sim = name_similarity(tokens[i[k]], tokens[j[k]])
            level = differs
            for n, t in enumerate(thresholds):
                if sim >= t:
                    level = n
                    break
            out[k] = level
        return out

    def term_frequency(self, f: Features, i: IntArray, j: IntArray,
                       levels: LevelArray) -> FloatArray | None:
        tf = np.asarray(f["name_tf"], dtype=np.float64)
        return np.where(levels == 0, np.maximum(tf[i], tf[j]), 0.0)


@dataclass(frozen=True)
class BirthDateAgreement(Comparison):
    """:func:`~reconciler.identity.normalize.birth_date_agreement`; an exact date that is
    an administrative default (1 January, …) is its own, weaker level."""

    name: str = "birth_date"
    levels: tuple[str, ...] = ("same", "same_default", "swapped", "year", "differs",
                               NO_EVIDENCE)
    words: Mapping[str, str] = field(default_factory=lambda: {
        "same": "birth date same", "same_default": "birth date same (a default date)",
        "swapped": "birth date day/month swapped", "year": "birth year same",
        "differs": "birth date differs"})

    def grade(self, f: Features, i: IntArray, j: IntArray) -> LevelArray:
        dobs = f["dob"]
        out, both = self._pairs_with_both(f.truthy("dob"), i, j)
        index = {"swapped": 2, "year": 3, "mismatch": 4}
        for k in both.tolist():
            di: BirthDate = dobs[i[k]]
            agreement = birth_date_agreement(di, dobs[j[k]])
            if agreement == "exact":
                out[k] = 1 if di.is_low_information else 0
            elif agreement != "unknown":
                out[k] = index[agreement]
        return out


@dataclass(frozen=True)
class IdentifierTypo(Comparison):
    """An identifier of one kind one keystroke apart where a side fails its check digit."""

    name: str = "typo"
    levels: tuple[str, ...] = ("one_keystroke", NO_EVIDENCE)
    words: Mapping[str, str] = field(default_factory=lambda: {
        "one_keystroke": "identifier one keystroke apart (a typo)"})

    def grade(self, f: Features, i: IntArray, j: IntArray) -> LevelArray:
        raw, ids = f["raw_ids"], f["ids"]
        out, both = self._pairs_with_both(f.truthy("raw_ids"), i, j)
        for k in both.tolist():
            raw_i, raw_j = raw[i[k]], raw[j[k]]
            ids_i, ids_j = ids[i[k]], ids[j[k]]
            for kind, value in raw_i.items():
                other = raw_j.get(kind)
                if other and other != value and (kind not in ids_i or kind not in ids_j) \
                        and one_keystroke_apart(value, other):
                    out[k] = 0
                    break
        return out


@dataclass(frozen=True)
class SharedEmployer(Comparison):
    """Both signatures were seen at one employer."""

    name: str = "employer"
    levels: tuple[str, ...] = ("same", NO_EVIDENCE)
    words: Mapping[str, str] = field(default_factory=lambda: {"same": "same employer"})

    def grade(self, f: Features, i: IntArray, j: IntArray) -> LevelArray:
        employers = f["employers"]
        out, both = self._pairs_with_both(f.truthy("employers"), i, j)
        for k in both.tolist():
            if employers[i[k]] & employers[j[k]]:
                out[k] = 0
        return out


def one_keystroke_apart(a: str, b: str) -> bool:
    """One digit changed, or two neighbours swapped — the typos a check digit catches."""
    if len(a) != len(b):
        return False
    diff = [k for k in range(len(a)) if a[k] != b[k]]
    if len(diff) == 1:
        return True
    return (len(diff) == 2 and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])


# --------------------------------------------------------------------------------------
# Blocking
# --------------------------------------------------------------------------------------


class BlockingRule(ABC):
    """Gives signatures keys; two signatures sharing a key are a candidate pair."""

    columns: tuple[str, ...] = ()

    @abstractmethod
    def keys(self, f: Features) -> tuple[IntArray, list[str]]:
        """Parallel lists: a signature index and one of its keys, for every key."""

    @abstractmethod
    def row_keys(self, row: Mapping[str, object]) -> list[str]:
        """The keys of one record (the incremental index's view)."""


@dataclass(frozen=True)
class BlockOn(BlockingRule):
    """Same values in all of ``columns`` (none missing). ``unordered``: the values as a
    set, so that a given name and surname entered the wrong way round still meet."""

    columns: tuple[str, ...]
    unordered: bool = False

    @cached_property
    def prefix(self) -> str:
        return ("~" if self.unordered else "=") + "+".join(self.columns) + ":"

    def _key(self, values: Sequence[object]) -> str | None:
        if any(v is None for v in values):
            return None
        parts = sorted(str(v) for v in values) if self.unordered else [str(v) for v in values]
        return self.prefix + "\x1f".join(parts)

    def keys(self, f: Features) -> tuple[IntArray, list[str]]:
        present = np.logical_and.reduce([f.present(c) for c in self.columns])
        sig = np.flatnonzero(present)
        parts = [f.values(c)[sig] for c in self.columns]
        if self.unordered and len(parts) == 2:
            first = np.where(parts[0] <= parts[1], parts[0], parts[1])
            parts = [first, np.where(parts[0] <= parts[1], parts[1], parts[0])]
        elif self.unordered:
            parts = [np.asarray(p, dtype=object)
                     for p in zip(*(sorted(row) for row in zip(*parts, strict=True)),
                                  strict=True)] if len(sig) else parts
        key = np.full(len(sig), self.prefix, dtype=object)
        for n, part in enumerate(parts):
            key = key + part if n == 0 else key + "\x1f" + part
        return sig.astype(np.int64), key.tolist()

    def row_keys(self, row: Mapping[str, object]) -> list[str]:
        values: list[object] = []
        for c in self.columns:
            v = row.get(c)
            values.append(None if v is None or pd.isna(v) or v == "" else str(v))
        key = self._key(values)
        return [key] if key else []


def block_pairs(sig: IntArray, keys: list[str], max_block_size: int, n: int) -> IntArray:
    """Every pair of signatures sharing a key, from blocks of 2 to ``max_block_size``
    members, as codes ``lo * n + hi`` (``lo < hi``) — unsorted, possibly repeated."""
    if not keys:
        return np.empty(0, dtype=np.int64)
    codes = pd.factorize(np.asarray(keys, dtype=object), sort=False)[0]
    order = np.lexsort((sig, codes))
    code_s, sig_s = codes[order], sig[order]
    starts = np.flatnonzero(np.r_[True, code_s[1:] != code_s[:-1]])
    sizes = np.diff(np.r_[starts, len(code_s)])
    keep = (sizes >= 2) & (sizes <= max_block_size)
    block_of = np.repeat(np.arange(len(starts)), sizes)
    member = np.flatnonzero(keep[block_of])
    if not len(member):
        return np.empty(0, dtype=np.int64)
    # every member pairs with the members after it in its block
    partners = (starts + sizes)[block_of[member]] - member - 1
    left = np.repeat(member, partners)
    offsets = np.arange(len(left)) - np.repeat(np.cumsum(partners) - partners, partners)
    a, b = sig_s[left], sig_s[left + offsets + 1]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    distinct = lo != hi
    pair_codes: IntArray = (lo[distinct] * n + hi[distinct]).astype(np.int64)
    return pair_codes


# --------------------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Configuration:
    """What the resolver compares and how it finds candidates.

    ``exclusive``: a column naming the file a record comes from, when each file is known
    to hold every person at most once (a link between two clean files): a person then
    holds at most one record per value, and records of one file are never paired.
    """

    comparisons: tuple[Comparison, ...]
    blocking: tuple[BlockingRule, ...]
    exclusive: str | None = None

    def __post_init__(self) -> None:
        names = [c.name for c in self.comparisons]
        if len(set(names)) != len(names):
            raise ValueError(f"comparison names must be unique: {names}")

    @property
    def fields(self) -> dict[str, tuple[str, ...]]:
        """Each comparison's levels, by name (the weight table's keys)."""
        return {c.name: c.levels for c in self.comparisons}

    @property
    def columns(self) -> tuple[str, ...]:
        """Record columns read beyond the contract's identity columns."""
        seen: dict[str, None] = {}
        for comparison in self.comparisons:
            seen.update(dict.fromkeys(comparison.columns))
        for rule in self.blocking:
            seen.update(dict.fromkeys(rule.columns))
        if self.exclusive:
            seen[self.exclusive] = None
        return tuple(seen)

    def extend(self, comparisons: Sequence[Comparison] = (),
               blocking: Sequence[BlockingRule] = (),
               exclusive: str | None = None) -> Configuration:
        """This configuration with more comparisons and blocking rules."""
        return Configuration((*self.comparisons, *comparisons), (*self.blocking, *blocking),
                             exclusive or self.exclusive)
