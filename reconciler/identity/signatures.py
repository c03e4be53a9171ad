"""Records → signatures → per-signature arrays: the resolver's data, without per-record
Python objects.

A *signature* is one distinct combination of a record's identity fields (a worker's
payroll line repeats every month with the same fields). Every value the resolver looks at
is kept once, in a :class:`Table` per column (code → value, value → code), and a signature
is a row of integer codes into those tables. What the comparisons need of a value — a
name's tokens, a birth date's parts, whether an identifier failed its check — is computed
once per distinct value (:class:`Tables` keeps it beside the table), not once per record:
names and birth dates repeat heavily across feeds, and millions of records then cost array
operations.

The codes are stable for as long as the tables live: a batch run uses fresh tables; the
incremental index (``reconciler.identity.index``) keeps one :class:`Tables` for its whole
life, so that the codes of a delivery and of the records indexed before it agree.

A missing value — None, NaN or the empty string — has code -1 everywhere; a value that is
not a string is compared as its ``str()``.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from reconciler.identity.normalize import (
    BirthDate,
    arabic_to_latin,
    name_key,
    name_tokens,
    name_tokens_many,
    parse_birth_date,
)

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjectArray = npt.NDArray[np.object_]

STRONG_KINDS = ("national_id", "residence_id", "border_number")
IDENTITY_COLUMNS = ["national_id", "residence_id", "border_number", "passport_number",
                    "invalid_ids", "nationality", "name_en", "name_ar", "date_of_birth", "sex"]

_EMPTY = np.empty(0, dtype=np.int64)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Resolution makes millions of short-lived tuples and lists and no reference cycles:
    reference counting frees them, while the cyclic collector, which their allocation keeps
    triggering, would walk every live object again and again. It runs again after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _firsts(ordered: npt.NDArray[Any]) -> BoolArray:
    mask = np.empty(len(ordered), dtype=bool)
    if len(ordered):
        mask[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=mask[1:])
    return mask


def unique(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The sorted distinct values (``np.unique``, by sorting: numpy 2's hashing path is
    many times slower on large integer arrays)."""
    ordered = np.sort(values)
    return ordered[_firsts(ordered)]


def unique_counts(values: IntArray) -> tuple[IntArray, IntArray]:
    ordered = np.sort(values)
    starts = np.flatnonzero(_firsts(ordered))
    return ordered[starts], np.diff(np.r_[starts, len(ordered)])


def unique_inverse(values: IntArray) -> tuple[IntArray, IntArray]:
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = _firsts(ordered)
    inverse = np.empty(len(values), dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    return ordered[first], inverse


def clean(value: object) -> str | None:
    """A cell as the resolver reads it: None for a missing value, else a non-empty string."""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value) or None


def object_array(values: Sequence[object]) -> ObjectArray:
    """A one-dimensional object array of ``values`` (even if they are tuples)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class Growing:
    """An array that grows at its end into spare room: ``a`` is the content (a view)."""

    def __init__(self, data: npt.NDArray[Any], room: int = 0) -> None:
        """``data`` to start with, and ``room`` for that many more rows."""
        self.n = len(data)
        if room:
            self.buf = np.empty((self.n + room, *data.shape[1:]), dtype=data.dtype)
            self.buf[: self.n] = data
        else:
            self.buf = data

    @classmethod
    def empty(cls, dtype: Any, *shape: int) -> Growing:
        return cls(np.empty((0, *shape), dtype=dtype))

    @property
    def a(self) -> npt.NDArray[Any]:
        return self.buf[: self.n]

    def extend(self, values: npt.NDArray[Any] | Sequence[Any]) -> None:
        need = self.n + len(values)
        if need > len(self.buf):  # a quarter more: the index's arrays hold millions
            buf = np.empty((max(need, len(self.buf) + len(self.buf) // 4, 16),
                            *self.buf.shape[1:]), dtype=self.buf.dtype)
            buf[: self.n] = self.buf[: self.n]
            self.buf = buf
        if self.buf.dtype == object:
            self.buf[self.n:need] = object_array(list(values))
        else:
            self.buf[self.n:need] = values
        self.n = need


def as_objects(column: object, n: int) -> ObjectArray:
    """A column (Series, array, list, or None for an absent column) as an object array."""
    if column is None:
        return np.full(n, None, dtype=object)
    if isinstance(column, pd.Series):
        out: ObjectArray = column.to_numpy(dtype=object)
        return out
    return np.asarray(column, dtype=object)


class Table:
    """The distinct values of one column: ``values[code]`` and value → code.

    A fresh table filled by one :meth:`encode` needs no lookup structure (a batch run);
    the incremental index's tables look values up through a pandas hash index over the
    values they started with (far leaner than a dictionary) and a dictionary of those
    added since."""

    __slots__ = ("_array", "_base", "_extra", "values")

    def __init__(self) -> None:
        self.values: list[str] = []
        self._base: pd.Index | None = None  # over values[:len(self._base)]
        self._extra: dict[str, int] = {}
        self._array: Growing | None = None

    def __len__(self) -> int:
        return len(self.values)

    def array(self) -> ObjectArray:
        """The values as an object array."""
        if self._array is None:
            self._array = Growing(object_array(self.values))
        elif self._array.n < len(self.values):
            self._array.extend(self.values[self._array.n:])
        out: ObjectArray = self._array.a
        return out

    def lookup(self, values: Sequence[str]) -> IntArray:
        """Codes of the given values, -1 for those the table does not hold."""
        if not len(values):
            return _EMPTY.copy()
        if self._base is None:  # every value so far; those added later go to _extra
            self._base = pd.Index(object_array(self.values), dtype=object)
            self._extra = {}
        if len(values) <= 32:  # a few: one hash look-up each beats building an indexer
            base, extra = self._base, self._extra
            found: list[int] = []
            for v in values:
                try:
                    found.append(int(base.get_loc(v)))
                except KeyError:
                    found.append(extra.get(v, -1))
            return np.asarray(found, dtype=np.int64)
        out: IntArray = self._base.get_indexer(object_array(list(values))).astype(np.int64)
        if self._extra:
            get = self._extra.get
            for k in np.flatnonzero(out < 0).tolist():
                out[k] = get(values[k], -1)
        return out

    def add(self, value: str, new: bool = False) -> int:
        """The code of ``value``, added if new (``new``: known not to be held)."""
        found = -1 if new else int(self.lookup([value])[0])
        if found >= 0:
            return found
        code = len(self.values)
        self.values.append(value)
        self._extra[value] = code
        return code

    def encode(self, column: object, n: int | None = None, add: bool = True) -> IntArray:
        """The code of every cell of ``column`` (-1: missing). New values are added, or,
        with ``add=False``, coded -2."""
        raw = as_objects(column, n if n is not None else 0)
        if not len(raw):
            return _EMPTY.copy()
        codes, uniques = pd.factorize(raw, use_na_sentinel=True)
        if not len(uniques):
            return np.full(len(raw), -1, dtype=np.int64)
        listed = uniques.tolist()
        if not self.values and add and all(type(v) is str and v for v in listed):
            # a fresh table of clean strings (the usual case): the uniques are the values
            self.values = listed
            coded: IntArray = codes.astype(np.int64)
            return coded
        cleaned = [clean(v) for v in listed]
        if not self.values and add:
            # a fresh table: the cleaned uniques are the values
            again, distinct = pd.factorize(object_array(cleaned), use_na_sentinel=True)
            self.values = list(distinct.tolist())
            mapping = again.astype(np.int64)
        else:
            present = [k for k, v in enumerate(cleaned) if v is not None]
            mapping = np.full(len(cleaned), -1, dtype=np.int64)
            found = self.lookup([cleaned[k] for k in present])  # type: ignore[misc]
            added: dict[str, int] = {}
            for k, code in zip(present, found.tolist(), strict=True):
                if code < 0:
                    value: str = cleaned[k]  # type: ignore[assignment]
                    code = added.get(value, -1) if add else -2
                    if code == -1:
                        code = added[value] = self.add(value, new=True)
                mapping[k] = code
        result: IntArray = np.where(codes >= 0, mapping[codes], -1).astype(np.int64)
        return result


class NameTable:
    """The distinct name token tuples, each with its name key (blocking) and its token set
    (term frequency: a name in any token order is one name), a sorted tuple."""

    def __init__(self) -> None:
        self.tokens: list[tuple[str, ...]] = []
        self._code: dict[tuple[str, ...], int] = {}
        self.keys = Table()  # the name keys (name_key of the tokens)
        self._key = Growing.empty(np.int64)  # name code -> key code, -1: no key
        self.sets: list[tuple[str, ...]] = []  # token set code -> its tokens, sorted
        self._set_code: dict[tuple[str, ...], int] = {}
        self._set = Growing.empty(np.int64)  # name code -> token set code

    def __len__(self) -> int:
        return len(self.tokens)

    def code(self, tokens: tuple[str, ...]) -> int:
        """The code of a token tuple (-1 for no tokens), added if new."""
        if not tokens:
            return -1
        found = self._code.get(tokens)
        if found is not None:
            return found
        code = len(self.tokens)
        self._code[tokens] = code
        self.tokens.append(tokens)
        key = name_key(tokens)
        self._key.extend([self.keys.add(key) if key else -1])
        members = tuple(sorted(set(tokens)))
        set_code = self._set_code.setdefault(members, len(self.sets))
        if set_code == len(self.sets):
            self.sets.append(members)
        self._set.extend([set_code])
        return code

    def arrays(self) -> tuple[IntArray, IntArray]:
        """Per name code: its key code and its token set code."""
        return self._key.a, self._set.a


class BirthDates:
    """The parsed birth dates of a date column's table, one per distinct value."""

    def __init__(self) -> None:
        self.parsed: list[BirthDate | None] = []
        self._parts = Growing.empty(np.int64, 4)  # year (-1: none), month (0: year only),
        # day, low information (BirthDate.is_low_information)

    def extend(self, values: Sequence[str]) -> None:
        parts: list[tuple[int, int, int, int]] = []
        for raw in values[len(self.parsed):]:
            try:
                dob = parse_birth_date(raw)
            except ValueError:
                dob = None
            self.parsed.append(dob)
            parts.append((-1, 0, 0, 0) if dob is None else
                         (dob.year, dob.month or 0, dob.day or 0, int(dob.is_low_information)))
        if parts:
            self._parts.extend(np.asarray(parts, dtype=np.int64))

    def arrays(self) -> tuple[IntArray, IntArray, IntArray, BoolArray]:
        parts = self._parts.a
        return parts[:, 0], parts[:, 1], parts[:, 2], parts[:, 3].astype(bool)


class Tables:
    """Every column's :class:`Table`, the names' :class:`NameTable`, and what is computed
    once per distinct value (name tokens, birth dates, invalid-identifier flags)."""

    def __init__(self) -> None:
        self.columns: dict[str, Table] = {}
        self.names = NameTable()
        self.birth_dates = BirthDates()
        self._name_codes = {"name_en": Growing.empty(np.int64),
                            "name_ar": Growing.empty(np.int64)}
        self._invalid = Growing.empty(bool, len(STRONG_KINDS))

    def column(self, name: str) -> Table:
        table = self.columns.get(name)
        if table is None:
            table = self.columns[name] = Table()
        return table

    def name_codes(self, column: str, wanted: IntArray) -> IntArray:
        """The name code of the values ``wanted`` (codes into the column's table) of
        ``name_en`` (its tokens) or ``name_ar`` (the tokens of its romanisation); computed
        once per value, when first wanted."""
        values = self.column(column).values
        grow = self._name_codes[column]
        if grow.n < len(values):
            grow.extend(np.full(len(values) - grow.n, -2, dtype=np.int64))
        done = grow.a
        wanted = wanted[wanted >= 0]
        todo = unique(wanted[done[wanted] == -2]) if len(wanted) else wanted
        if len(todo):
            code = self.names.code
            if column == "name_ar":
                done[todo] = [code(name_tokens(arabic_to_latin(values[k])))
                              for k in todo.tolist()]
            else:
                # an ASCII name's tokens do not depend on its case: "MUHAMMAD ALI" and
                # "Muhammad Ali" are normalised once
                keys = [raw.lower() if raw.isascii() else raw
                        for raw in (values[k] for k in todo.tolist())]
                distinct = list(dict.fromkeys(keys))
                coded = dict(zip(distinct, [code(t) for t in name_tokens_many(distinct)],
                                 strict=True))
                done[todo] = [coded[k] for k in keys]
        return done

    def dob_arrays(self) -> tuple[IntArray, IntArray, IntArray, BoolArray]:
        self.birth_dates.extend(self.column("date_of_birth").values)
        return self.birth_dates.arrays()

    def invalid_flags(self) -> npt.NDArray[np.bool_]:
        """Per value of ``invalid_ids``: which of the strong kinds it names (n, 3)."""
        values = self.column("invalid_ids").values
        if self._invalid.n < len(values):
            self._invalid.extend(np.asarray([[kind in raw for kind in STRONG_KINDS]
                                             for raw in values[self._invalid.n:]], dtype=bool))
        flags: npt.NDArray[np.bool_] = self._invalid.a
        return flags


class SigArrays:
    """Signatures as arrays: per signature, the code of each column, its employers (the
    distinct ``employer_id`` of its records, as a CSR list) and its first record ref.

    It is the column source of :class:`~reconciler.identity.comparisons.Features`:
    ``codes(column)`` / ``table(column)``; ``sigs[column]`` gives the values as a Series."""

    def __init__(self, tables: Tables, codes: Mapping[str, npt.NDArray[np.integer[Any]]],
                 employer_ptr: IntArray, employer_code: IntArray,
                 first_ref: ObjectArray) -> None:
        self.tables = tables
        self.n = len(first_ref)
        self._codes = dict(codes)
        self.employer_ptr = employer_ptr
        self.employer_code = employer_code
        self.first_ref = first_ref

    def __len__(self) -> int:
        return self.n

    def __contains__(self, column: object) -> bool:
        return column in self._codes

    @property
    def columns(self) -> list[str]:
        return list(self._codes)

    def codes(self, column: str) -> IntArray:
        """The column's codes (-1: missing); kept as 32-bit integers, given as 64."""
        found = self._codes.get(column)
        if found is None:
            return np.full(self.n, -1, dtype=np.int64)
        return found.astype(np.int64)

    def table(self, column: str) -> Table:
        return self.tables.column(column)

    def values(self, column: str) -> ObjectArray:
        codes = self.codes(column)
        values = object_array([*self.table(column).values, None])
        out: ObjectArray = values[np.where(codes >= 0, codes, len(values) - 1)]
        return out

    def __getitem__(self, column: str) -> pd.Series:
        return pd.Series(self.values(column), name=column)

    def take(self, index: IntArray) -> SigArrays:
        ptr, code = self.employer_ptr, self.employer_code
        starts, ends = ptr[index], ptr[index + 1]
        sizes = ends - starts
        new_ptr = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(sizes, out=new_ptr[1:])
        gather = np.repeat(starts - new_ptr[:-1], sizes) + np.arange(new_ptr[-1])
        return SigArrays(self.tables, {c: v[index] for c, v in self._codes.items()},
                         new_ptr, code[gather], self.first_ref[index])


def group_records(records: pd.DataFrame, columns: Sequence[str], tables: Tables,
                  ) -> tuple[SigArrays, IntArray, ObjectArray, IntArray]:
    """Collapse records into signatures (one per distinct combination of ``columns``, in
    order of first appearance). Returns the signatures, the signature of each record, the
    refs (as strings) and each record's employer code."""
    n = len(records)
    refs = as_objects(records["ref"], n) if "ref" in records.columns else \
        np.asarray([str(k) for k in range(n)], dtype=object)
    if pd.api.types.infer_dtype(refs, skipna=False) != "string":
        refs = np.asarray([str(r) for r in refs.tolist()], dtype=object)
    codes = {c: tables.column(c).encode(records[c] if c in records.columns else None, n)
             .astype(np.int32) for c in columns}  # half the memory: a million signatures
    # one integer per distinct combination: codes packed while they fit in 62 bits,
    # renumbered densely (in order of first appearance) when they would not, and at the end
    key = np.zeros(n, dtype=np.int64)
    bound = 1
    for c in columns:
        width = len(tables.column(c)) + 1
        if bound * width >= 1 << 62:
            key = pd.factorize(key)[0].astype(np.int64)
            bound = int(key.max()) + 1 if n else 1
        key = key * width + codes[c].astype(np.int64) + 1
        bound *= width
    sig_of_record = pd.factorize(key)[0].astype(np.int64)
    key = sig_of_record
    nsig = int(key.max()) + 1 if n else 0
    order = np.argsort(sig_of_record, kind="stable")
    sorted_sigs = sig_of_record[order]
    starts = np.flatnonzero(np.r_[True, sorted_sigs[1:] != sorted_sigs[:-1]]) if n else _EMPTY
    first_row = order[starts]
    first_ref = (np.minimum.reduceat(refs[order], starts) if n
                 else np.empty(0, dtype=object)).astype(object)
    employer = tables.column("employer_id").encode(
        records["employer_id"] if "employer_id" in records.columns else None, n)
    ptr, emp = employer_lists(sig_of_record, employer, nsig)
    sigs = SigArrays(tables, {c: codes[c][first_row] for c in columns}, ptr, emp, first_ref)
    return sigs, sig_of_record, refs, employer


def employer_lists(sig_of_record: IntArray, employer: IntArray,
                   nsig: int) -> tuple[IntArray, IntArray]:
    """Each signature's distinct employer codes, sorted, as CSR (pointers, codes)."""
    has = employer >= 0
    width = int(employer.max()) + 2 if len(employer) else 1
    pairs = unique(sig_of_record[has] * width + employer[has])
    sig, emp = pairs // width, pairs % width
    ptr = np.zeros(nsig + 1, dtype=np.int64)
    np.cumsum(np.bincount(sig, minlength=nsig), out=ptr[1:])
    return ptr, emp.astype(np.int64)


# --------------------------------------------------------------------------------------
# Connected components and identifier clusters
# --------------------------------------------------------------------------------------


def components(n: int, a: IntArray, b: IntArray) -> IntArray:
    """The smallest node of each node's connected component (undirected edges a–b)."""
    label = np.arange(n, dtype=np.int64)
    if not len(a):
        return label
    while True:
        low = np.minimum(label[a], label[b])
        before = label.copy()
        np.minimum.at(label, a, low)
        np.minimum.at(label, b, low)
        while True:  # pointer jumping
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped
        if np.array_equal(label, before):
            return label


def id_clusters(valid: IntArray, first_ref: ObjectArray,
                exclusive: IntArray | None = None) -> IntArray:
    """Step 2 of the resolver: signatures sharing a valid identifier are joined, but a
    cluster never holds two different valid identifiers of one kind (nor, under an
    ``exclusive`` configuration, two signatures of one file). Returns each signature's
    cluster, named by one of its members.

    Where a connected component of "shares an identifier" holds no such conflict (nearly
    always) it is one cluster. Otherwise the joins are made one by one — for each kind in
    turn, every signature joins the first holder of its value — with the signatures in the
    order of their first record refs, so that the result does not depend on the order the
    records came in."""
    return id_structure(valid, first_ref, exclusive)[1]


def id_structure(valid: IntArray, first_ref: ObjectArray,
                 exclusive: IntArray | None = None) -> tuple[IntArray, IntArray]:
    """Each signature's identifier component and its cluster (:func:`id_clusters`), both
    named by a member signature."""
    m = len(valid)
    if not m:
        return _EMPTY.copy(), _EMPTY.copy()
    holders, kinds = np.nonzero(valid >= 0)
    value_node = (pd.factorize(valid[holders, kinds] * valid.shape[1] + kinds)[0]
                  .astype(np.int64) if len(holders) else _EMPTY)
    component = components(m + (int(value_node.max()) + 1 if len(value_node) else 0),
                           holders.astype(np.int64), m + value_node)[:m]
    # components with two different values of one kind (or two signatures of one file)
    conflicted = np.zeros(m, dtype=bool)
    for k in range(valid.shape[1]):
        has = valid[:, k] >= 0
        width = int(valid[:, k].max()) + 1
        pairs = unique(component[has] * width + valid[has, k])
        comp = pairs // width
        conflicted[comp[1:][comp[1:] == comp[:-1]]] = True
    if exclusive is not None:
        has = exclusive >= 0
        width = int(exclusive.max()) + 1 if has.any() else 1
        uniq, counts = unique_counts(component[has] * width + exclusive[has])
        conflicted[uniq[counts > 1] // width] = True
    bad = np.flatnonzero(conflicted[component])
    cluster = component
    if len(bad):
        cluster = component.copy()
        _sequential_clusters(bad, valid, first_ref, exclusive, cluster)
    return component, cluster


def _sequential_clusters(members: IntArray, valid: IntArray, first_ref: ObjectArray,
                         exclusive: IntArray | None, label: IntArray) -> None:
    """The one-by-one joins of :func:`id_clusters` for the signatures ``members`` (whole
    components), writing their clusters into ``label``."""
    order = members[np.argsort(first_ref[members].astype(str), kind="stable")].tolist()
    clusters = UnionFind(lambda s: sig_identity(valid, exclusive, s))
    for k in range(valid.shape[1]):
        holder: dict[int, int] = {}
        for s in order:
            value = int(valid[s, k])
            if value >= 0:
                clusters.union(holder.setdefault(value, s), s)
    for s in order:
        label[s] = clusters.find(s)


def sig_identity(valid: IntArray, exclusive: IntArray | None, s: int) -> dict[object, int]:
    """What a signature holds that two persons cannot share: a valid identifier per kind
    and, under an ``exclusive`` configuration, its file (valued by the signature)."""
    own: dict[object, int] = {k: int(v) for k, v in enumerate(valid[s].tolist()) if v >= 0}
    if exclusive is not None and exclusive[s] >= 0:
        own[("file", int(exclusive[s]))] = s
    return own


class UnionFind:
    """Union–find over hashable nodes that refuses a merge joining two different values of
    one kind (``identity(node)``: what a node holds, by kind)."""

    def __init__(self, identity: Callable[[int], dict[object, int]]) -> None:
        self.parent: dict[int, int] = {}
        self.held: dict[int, dict[object, int]] = {}
        self._identity = identity

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while True:
            up = parent.get(root, root)
            if up == root:
                break
            root = up
        while x != root:
            up = parent.get(x, x)
            parent[x] = root
            x = up
        return root

    def _held(self, root: int) -> dict[object, int]:
        held = self.held.get(root)
        if held is None:
            held = self.held[root] = self._identity(root)
        return held

    def conflict(self, a: int, b: int) -> bool:
        ia, ib = self._held(a), self._held(b)
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
        merged = self.held.pop(b)
        self.held[a].update(merged)
        return True


def cluster_identity(labels: IntArray, valid: IntArray, exclusive: IntArray | None,
                     ) -> Callable[[int], dict[object, int]]:
    """``identity`` for a :class:`UnionFind` over identifier clusters: what the cluster
    named ``label`` holds (the union of its members' identifiers and files)."""
    width = valid.shape[1]
    held = np.full((len(labels), width), -1, dtype=np.int64)
    for k in range(width):
        np.maximum.at(held[:, k], labels, valid[:, k])
    files: dict[int, list[int]] = {}
    if exclusive is not None:
        for s in np.flatnonzero(exclusive >= 0).tolist():
            files.setdefault(int(labels[s]), []).append(s)

    def identity(label: int) -> dict[object, int]:
        own: dict[object, int] = {k: int(v) for k, v in enumerate(held[label].tolist())
                                  if v >= 0}
        for s in files.get(label, ()):
            own[("file", int(exclusive[s]))] = s  # type: ignore[index]
        return own

    return identity
