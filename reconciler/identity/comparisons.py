"""The resolver's model as small declarative parts: comparisons and blocking rules.

A **comparison** grades a candidate pair of signatures on one piece of evidence into one of
its ordered *levels* — best first, the last one ``"-"``: a side is empty, no evidence
either way. The weight of each level, a log₂ Bayes factor log₂(m/u), lives in the
:class:`~reconciler.identity.resolve.WeightTable` under ``(comparison name, level)``:
hand-set for the product, or estimated from the data (``reconciler.identity.training``).
Grading is vectorised: ``grade(features, i, j)`` takes two arrays of signature indexes
and returns one level index per pair. The :class:`Features` are arrays too — a column as
integer codes (equal codes, equal values), a name as a code into the table of distinct
token tuples — so comparing a pair is comparing integers, and a costly comparison (a
name's similarity) is computed once per distinct pair of values. An ``expensive``
comparison is graded last, only for the pairs the others leave able to reach the review
band.

A **blocking rule** gives each signature its keys; signatures sharing a key are candidate
pairs (blocks larger than the resolver's ``max_block_size`` are skipped). A key names its
block wherever it is computed (the incremental index looks blocks up by key).

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
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler

from reconciler.identity.normalize import name_similarity
from reconciler.identity.signatures import SigArrays, Table, unique_inverse

IntArray = npt.NDArray[np.int64]
LevelArray = npt.NDArray[np.int8]
FloatArray = npt.NDArray[np.float64]
ObjectArray = npt.NDArray[np.object_]

NO_EVIDENCE = "-"


class Features(Mapping[str, Any]):
    """Per-signature data, each entry computed on first use: the contract's features
    (``builders``, e.g. name codes) and any column's values (:meth:`values`) and codes
    (:meth:`codes`). A configuration that compares no names never tokenises one.

    ``sigs`` is a DataFrame (one row per signature) or the resolver's
    :class:`~reconciler.identity.signatures.SigArrays`, whose columns are already codes."""

    def __init__(self, sigs: pd.DataFrame | SigArrays,
                 builders: Mapping[str, Callable[[Features], Any]] | None = None) -> None:
        self.sigs = sigs
        self.n = len(sigs)
        self._builders = builders or {}
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

    def _coded(self, column: str) -> tuple[IntArray, ObjectArray]:
        """The column as codes (-1 where missing: None, NaN or the empty string; equal
        codes are equal strings) and the value of each code."""
        key = "coded:" + column
        if key not in self._cache:
            sigs = self.sigs
            if isinstance(sigs, SigArrays):
                coded = (sigs.codes(column), sigs.table(column).array())
            else:
                table = Table()
                codes = table.encode(sigs[column] if column in sigs.columns else None, self.n)
                coded = (codes, table.array())
            self._cache[key] = coded
        return self._cache[key]  # type: ignore[no-any-return]

    def codes(self, column: str) -> IntArray:
        return self._coded(column)[0]

    def values(self, column: str) -> ObjectArray:  # type: ignore[override]
        """The column as an object array of strings, ``None`` where missing (None, NaN
        or the empty string)."""
        key = "values:" + column
        if key not in self._cache:
            codes, table = self._coded(column)
            values = np.empty(len(table) + 1, dtype=object)
            values[:-1] = table
            self._cache[key] = values[np.where(codes >= 0, codes, len(table))]
        return self._cache[key]  # type: ignore[no-any-return]

    def present(self, column: str) -> npt.NDArray[np.bool_]:
        return self.codes(column) >= 0

    def truthy(self, key: str) -> npt.NDArray[np.bool_]:
        """Which signatures have a non-empty value of the feature ``key``."""
        cache = "truthy:" + key
        if cache not in self._cache:
            self._cache[cache] = np.fromiter((bool(v) for v in self[key]), dtype=bool,
                                             count=self.n)
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
    # graded last, and only for pairs the cheaper comparisons leave able to reach the
    # review band (the resolver's bound; grading every pair gives the same links)
    expensive: ClassVar[bool] = False

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
        codes = f.codes(self.column)
        out, both = self._pairs_with_both(codes >= 0, i, j)
        same = codes[i[both]] == codes[j[both]]
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
    expensive: ClassVar[bool] = True

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
    expensive: ClassVar[bool] = True

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
        valid = f["id_valid"]
        a, b = valid[i], valid[j]
        out = np.full(len(i), 1, dtype=np.int8)
        out[((a >= 0) & (b >= 0) & (a != b)).any(axis=1)] = 0
        return out


@dataclass(frozen=True)
class NameSimilarity(Comparison):
    """The contract's name: :func:`~reconciler.identity.normalize.name_similarity` over the
    name tokens (order-, transliteration- and initial-tolerant) at ``thresholds``, and the
    term-frequency adjustment when the names are the same. Each distinct pair of names is
    compared once."""

    name: str = "name"
    thresholds: tuple[float, ...] = (0.97, 0.90, 0.80, 0.65)
    levels: tuple[str, ...] = ("same", "close", "similar", "weak", "differs", NO_EVIDENCE)
    words: Mapping[str, str] = field(default_factory=lambda: {
        "same": "name same", "close": "name close", "similar": "name similar",
        "weak": "name weakly similar", "differs": "name differs"})
    expensive: ClassVar[bool] = True

    def grade(self, f: Features, i: IntArray, j: IntArray) -> LevelArray:
        code = f["name_code"]
        tokens: list[tuple[str, ...]] = f["name_table"].tokens
        ci, cj = code[i], code[j]
        out = np.full(len(i), len(self.levels) - 1, dtype=np.int8)
        both = np.flatnonzero((ci >= 0) & (cj >= 0))
        a, b = ci[both], cj[both]
        same = a == b
        if "nameset" in f:  # the same tokens in another order: the same name
            sets = f["nameset"]
            same |= sets[i[both]] == sets[j[both]]
        out[both[same]] = 0
        rest = both[~same]
        if len(rest):
            # the similarity is symmetric: each distinct pair of names is compared once
            width = len(tokens) + 1
            a, b = a[~same], b[~same]
            pairs, inverse = unique_inverse(np.minimum(a, b) * width + np.maximum(a, b))
            thresholds = self.thresholds
            differs = len(thresholds)
            graded = np.empty(len(pairs), dtype=np.int8)
            for k, pair in enumerate(pairs.tolist()):
                sim = name_similarity(tokens[pair // width], tokens[pair % width])
                level = differs
                for n, t in enumerate(thresholds):
                    if sim >= t:
                        level = n
                        break
                graded[k] = level
            out[rest] = graded[inverse.reshape(-1)]
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
        # birth_date_agreement over arrays: unknown, then year, precision, exact, swapped
        year, month, day, low = f["dob_year"], f["dob_month"], f["dob_day"], f["dob_low"]
        yi, yj = year[i], year[j]
        mi, mj, di, dj = month[i], month[j], day[i], day[j]
        year_only = (mi == 0) | (mj == 0)
        exact = ~year_only & (mi == mj) & (di == dj)
        swapped = ~year_only & ~exact & (mi == dj) & (di == mj)
        graded = np.where(yi != yj, 4, np.where(year_only, 3, np.where(
            exact, np.where(low[i], 1, 0), np.where(swapped, 2, np.where(
                low[i] | low[j], 3, 4)))))
        return np.where((yi >= 0) & (yj >= 0), graded, 5).astype(np.int8)


@dataclass(frozen=True)
class IdentifierTypo(Comparison):
    """An identifier of one kind one keystroke apart where a side fails its check digit."""

    name: str = "typo"
    levels: tuple[str, ...] = ("one_keystroke", NO_EVIDENCE)
    words: Mapping[str, str] = field(default_factory=lambda: {
        "one_keystroke": "identifier one keystroke apart (a typo)"})

    def grade(self, f: Features, i: IntArray, j: IntArray) -> LevelArray:
        raw, valid = f["id_raw"], f["id_valid"]
        strings: list[ObjectArray] = f["id_strings"]
        out = np.full(len(i), 1, dtype=np.int8)
        for k in range(raw.shape[1]):
            ri, rj = raw[i, k], raw[j, k]
            maybe = (ri >= 0) & (rj >= 0) & (ri != rj) & ((valid[i, k] < 0)
                                                          | (valid[j, k] < 0)) & (out == 1)
            values = strings[k]
            for p in np.flatnonzero(maybe).tolist():
                if one_keystroke_apart(values[ri[p]], values[rj[p]]):
                    out[p] = 0
        return out


@dataclass(frozen=True)
class SharedEmployer(Comparison):
    """Both signatures were seen at one employer."""

    name: str = "employer"
    levels: tuple[str, ...] = ("same", NO_EVIDENCE)
    words: Mapping[str, str] = field(default_factory=lambda: {"same": "same employer"})

    def grade(self, f: Features, i: IntArray, j: IntArray) -> LevelArray:
        ptr, employer = f["employer_ptr"], f["employer_code"]
        out = np.full(len(i), 1, dtype=np.int8)
        count = ptr[1:] - ptr[:-1]
        both = np.flatnonzero((count[i] > 0) & (count[j] > 0))
        if not len(both):
            return out
        # every (pair, employer of its first side), looked up among (signature, employer)
        width = int(employer.max()) + 1
        owner = np.repeat(np.arange(len(count)), count)
        held = owner * width + employer  # sorted: by signature, then employer
        sizes = count[i[both]]
        pair = np.repeat(both, sizes)
        starts = ptr[i[both]]
        ends = np.cumsum(sizes)
        position = np.repeat(starts - (ends - sizes), sizes) + np.arange(int(ends[-1]))
        wanted = j[pair] * width + employer[position]
        found = np.searchsorted(held, wanted)
        hit = found < len(held)
        hit[hit] = held[found[hit]] == wanted[hit]
        out[pair[hit]] = 0
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


Keys = IntArray | list[str]


class BlockingRule(ABC):
    """Gives signatures keys; two signatures sharing a key are a candidate pair.

    A key names its block wherever it is computed: strings, or integers made of the codes
    of the features' tables (stable for as long as the tables live) — the incremental
    index keeps the blocks of every signature it holds and looks new ones up by key."""

    columns: tuple[str, ...] = ()

    @abstractmethod
    def keys(self, f: Features) -> tuple[IntArray, Keys]:
        """Parallel lists: a signature index and one of its keys, for every key."""

    def row_keys(self, row: Mapping[str, object]) -> list[str]:
        """The keys of one record, as strings."""
        raise NotImplementedError


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

    def keys(self, f: Features) -> tuple[IntArray, Keys]:
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


def block_pairs(sig: IntArray, keys: Keys | npt.NDArray[Any], max_block_size: int,
                n: int) -> IntArray:
    """Every pair of signatures sharing a key, from blocks of 2 to ``max_block_size``
    members, as codes ``lo * n + hi`` (``lo < hi``) — unsorted, possibly repeated."""
    parts = list(iter_block_pairs(sig, keys, max_block_size, n))
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def iter_block_pairs(sig: IntArray, keys: Keys | npt.NDArray[Any], max_block_size: int,
                     n: int, chunk: int = 1 << 22) -> Iterator[IntArray]:
    """:func:`block_pairs` in pieces of about ``chunk`` pairs."""
    if not len(keys):
        return
    values = keys if isinstance(keys, np.ndarray) else np.asarray(keys, dtype=object)
    codes = pd.factorize(values, sort=False)[0]
    order = np.lexsort((sig, codes))
    code_s, sig_s = codes[order], sig[order]
    starts = np.flatnonzero(np.r_[True, code_s[1:] != code_s[:-1]])
    sizes = np.diff(np.r_[starts, len(code_s)])
    keep = (sizes >= 2) & (sizes <= max_block_size)
    starts, sizes = starts[keep], sizes[keep]
    if not len(starts):
        return
    total = np.cumsum(sizes * (sizes - 1) // 2)
    first = 0
    while first < len(starts):
        done = int(total[first - 1]) if first else 0
        last = max(int(np.searchsorted(total, done + chunk, side="right")), first + 1)
        st, sz = starts[first:last], sizes[first:last]
        first = last
        # every member pairs with the members after it in its block
        ends = np.cumsum(sz)
        member = np.repeat(st - (ends - sz), sz) + np.arange(int(ends[-1]))
        partners = np.repeat(st + sz, sz) - member - 1
        left = np.repeat(member, partners)
        offsets = np.arange(len(left)) - np.repeat(np.cumsum(partners) - partners, partners)
        a, b = sig_s[left], sig_s[left + offsets + 1]
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        distinct = lo != hi
        pair_codes: IntArray = (lo[distinct] * n + hi[distinct]).astype(np.int64)
        yield pair_codes


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
