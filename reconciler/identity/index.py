"""The person index: resolve a delivery of changed records without re-resolving everyone.

Why it can be exact. The resolver's decisions about a signature depend on its *component*
in the graph whose edges are "shares a valid identifier" and "is a scored pair that reaches
the review band": merging is best first within those pairs, the one-identifier-per-kind
constraint is per cluster, and a person never spans two components. So the index keeps,
for every signature, what the resolver would compute of it, and on a delivery recomputes
only what the delivery can change:

1. **Records and signatures.** A delivered record moves to the signature of its identity
   fields (found by a hash of their codes, or added). A signature whose records change
   may change its employers or its first ref; one that loses its last record dies.
2. **Pairs.** The signatures whose pairs can change are paired and scored again: the
   changed ones, every bearer of a name whose frequency weight changes, every member of a
   block that crosses ``max_block_size``, and every member of an identifier component
   whose clusters may change — one a signature leaves, one a new signature joins to
   another or brings a conflict into, one holding a conflict (its one-by-one joins depend
   on every member and on first refs) — since the clusters decide which pairs are scored
   at all. Their candidates come from the index's blocks (key → signatures), identifier
   typos from its identifiers; the pairs that reach the review band are kept as the
   graph's edges.
3. **Persons.** The components of what changed, before and after (and those of the persons
   a record leaves or brings a previous id to), are merged again exactly as a full run
   merges them (``IdentityResolver.merge``) and named from their records' previous ids.

Everything a full run reads per signature — codes of its values, its employers, its first
ref — is kept in arrays, the blocks and identifiers as sorted arrays from the first build
plus the keys changed since, so a delivery costs in proportion to what it touches, not to
the index: 1,000 changed records against a million persons take about a quarter of a
second (``benchmarks/incremental.py``). ``tests/integration/test_incremental.py`` checks
the result — persons, links, doubts and ids — against full runs.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from reconciler.identity.comparisons import Features
from reconciler.identity.resolve import (
    STRONG_KINDS,
    Details,
    IdentityResolver,
    Merged,
    Person,
    Persons,
    Resolution,
    _score_bound,
    keystroke_repairs,
)
from reconciler.identity.signatures import (
    Growing,
    IntArray,
    ObjectArray,
    SigArrays,
    Table,
    Tables,
    as_objects,
    components,
    gc_paused,
    id_clusters,
    object_array,
    unique,
)

__all__ = ["PersonIndex"]

Edge = tuple[float, float, bytes, int]  # score, tf, levels, the signature oriented first
_STRING_KEYS = 1 << 60  # blocking keys given as strings, by their code in a table


class _Lists:
    """A short list of ints per signature (its records, its employers): CSR from the
    build, and the lists changed since."""

    def __init__(self, ptr: IntArray, values: IntArray) -> None:
        self.ptr = ptr
        self.values = values
        self.changed: dict[int, tuple[int, ...]] = {}

    def get(self, s: int) -> tuple[int, ...]:
        found = self.changed.get(s)
        if found is not None:
            return found
        if s + 1 < len(self.ptr):
            return tuple(self.values[self.ptr[s]:self.ptr[s + 1]].tolist())
        return ()

    def set(self, s: int, items: Iterable[int]) -> None:
        self.changed[s] = tuple(items)

    def csr(self, sigs: IntArray,
            override: Mapping[int, tuple[int, ...]] | None = None) -> tuple[IntArray, IntArray]:
        """The lists of ``sigs`` (``override``: lists to use instead) as CSR."""
        built = len(self.ptr) - 1
        inside = sigs < built
        at = np.where(inside, sigs, 0)
        starts = np.where(inside, self.ptr[at], 0) if built else np.zeros(len(sigs), np.int64)
        sizes = np.where(inside, self.ptr[at + 1], 0) - starts if built else starts.copy()
        replaced: dict[int, tuple[int, ...]] = {}
        for k, s in enumerate(sigs.tolist()):
            found = override.get(s) if override is not None else None
            if found is None:
                found = self.changed.get(s)
            if found is not None:
                replaced[k] = found
                sizes[k] = len(found)
        ptr = np.zeros(len(sigs) + 1, dtype=np.int64)
        np.cumsum(sizes, out=ptr[1:])
        values = np.empty(int(ptr[-1]), dtype=np.int64)
        plain = inside.copy()
        plain[list(replaced)] = False
        lengths = sizes[plain]
        within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        values[np.repeat(ptr[:-1][plain], lengths) + within] = \
            self.values[np.repeat(starts[plain], lengths) + within]
        for k, items in replaced.items():
            values[ptr[k]:ptr[k + 1]] = items
        return ptr, values


class _Postings:
    """key → signatures: sorted arrays from the build, and the keys changed since as sets."""

    def __init__(self, keys: IntArray, sigs: IntArray) -> None:
        order = np.lexsort((sigs, keys))
        keys, sigs = keys[order], sigs[order]
        first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else keys
        self.keys = keys[first]
        self.ptr = np.r_[first, len(keys)].astype(np.int64)
        self.sigs = sigs
        self.changed: dict[int, set[int]] = {}

    def get(self, key: int) -> Iterable[int]:
        found = self.changed.get(key)
        if found is not None:
            return found
        at = int(np.searchsorted(self.keys, key))
        if at < len(self.keys) and int(self.keys[at]) == key:
            return self.sigs[self.ptr[at]:self.ptr[at + 1]].tolist()  # type: ignore[no-any-return]
        return ()

    def size(self, key: int) -> int:
        found = self.changed.get(key)
        if found is not None:
            return len(found)
        at = int(np.searchsorted(self.keys, key))
        if at < len(self.keys) and int(self.keys[at]) == key:
            return int(self.ptr[at + 1] - self.ptr[at])
        return 0

    def members(self, keys: IntArray) -> tuple[IntArray, IntArray]:
        """Every (position in ``keys``, signature) of the given keys."""
        keys = np.asarray(keys, dtype=np.int64)
        sizes, starts = self._base(keys)
        replaced = [k for k, key in enumerate(keys.tolist()) if key in self.changed] \
            if self.changed else []
        sizes[replaced] = 0
        owner = np.repeat(np.arange(len(keys)), sizes)
        within = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        members = self.sigs[np.repeat(starts, sizes) + within]
        if replaced:
            extra = [(k, t) for k in replaced for t in self.changed[int(keys[k])]]
            owner = np.r_[owner, np.asarray([k for k, _ in extra], dtype=np.int64)]
            members = np.r_[members, np.asarray([t for _, t in extra], dtype=np.int64)]
        return owner.astype(np.int64), members.astype(np.int64)

    def sizes(self, keys: IntArray) -> IntArray:
        keys = np.asarray(keys, dtype=np.int64)
        sizes, _ = self._base(keys)
        if self.changed:
            for k, key in enumerate(keys.tolist()):
                found = self.changed.get(key)
                if found is not None:
                    sizes[k] = len(found)
        return sizes

    def _base(self, keys: IntArray) -> tuple[IntArray, IntArray]:
        at = np.searchsorted(self.keys, keys)
        inside = np.minimum(at, max(len(self.keys) - 1, 0))
        hit = (at < len(self.keys)) & (self.keys[inside] == keys) if len(self.keys) \
            else np.zeros(len(keys), dtype=bool)
        starts = np.where(hit, self.ptr[inside], 0)
        sizes = np.where(hit, self.ptr[np.minimum(inside + 1, len(self.ptr) - 1)], 0) - starts
        return sizes.astype(np.int64), starts.astype(np.int64)

    def _own(self, key: int) -> set[int]:
        found = self.changed.get(key)
        if found is None:
            found = self.changed[key] = set(self.get(key))
        return found

    def add(self, key: int, s: int) -> None:
        self._own(key).add(s)

    def discard(self, key: int, s: int) -> None:
        self._own(key).discard(s)


def _conflicted(component: IntArray, cluster: IntArray) -> set[int]:
    """The components (of signatures in ``component``) that are more than one cluster."""
    first: dict[int, int] = {}
    out: set[int] = set()
    for c, k in zip(component.tolist(), cluster.tolist(), strict=True):
        if first.setdefault(c, k) != k:
            out.add(c)
    return out


def _row_hash(rows: IntArray) -> npt.NDArray[np.uint64]:
    """A 64-bit hash of each row of codes (a signature's identity)."""
    h = np.full(len(rows), 0x9E3779B97F4A7C15, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in rows.T:
            h ^= column.astype(np.uint64) + np.uint64(0x632BE59BD9B4E019)
            h *= np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(31)
    return h


class PersonIndex:
    """Every record's person, kept up to date delivery by delivery (the daemon's).

    ``person_of``: the last run's person ids (ref → id), used as the records' previous ids
    when they are first indexed."""

    def __init__(self, resolver: IdentityResolver,
                 person_of: Mapping[str, str] | None = None) -> None:
        self.resolver = resolver
        self._seed: dict[str, str] = dict(person_of or {})
        self._built = False
        self.last: Resolution | None = None

    # -- public ---------------------------------------------------------------------------

    def apply(self, delta: pd.DataFrame) -> Resolution:
        """Add or replace the records of ``delta`` (by ``ref``) and re-resolve what they
        touch. The returned resolution covers the re-resolved records only."""
        if delta["ref"].duplicated().any():
            delta = delta.drop_duplicates("ref", keep="last")
        if not len(delta):
            resolution = Resolution(person_of={}, persons={}, stats={"records": 0})
        elif self._built:  # a delivery: the collector's young generations are cheap
            resolution = self._update(delta)
        else:
            with gc_paused():
                resolution = self._build(delta)
            gc.collect()  # now, after the build's millions of objects, not in a delivery
        self.last = resolution
        return resolution

    def changed(self, records: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``records`` that are new or differ from what the index holds in a
        column the resolver reads."""
        if not self._built or not len(records):
            return records
        n = len(records)
        rid = self.refs.lookup(as_objects(records["ref"], n).astype(str).tolist())
        known = rid >= 0
        safe = np.maximum(rid, 0)
        differ = ~known
        emp = self.tables.column("employer_id").encode(
            records["employer_id"] if "employer_id" in records.columns else None, n, add=False)
        differ |= emp != self.rec_emp.a[safe]
        rows = self.sig_codes.a[self.rec_sig.a[safe]]
        for k, c in enumerate(self.cols):
            codes = self.tables.column(c).encode(records[c] if c in records.columns else None,
                                                 n, add=False)
            differ |= codes != rows[:, k]
        return records.iloc[np.flatnonzero(differ)]

    def resolution(self, stats: Mapping[str, int]) -> Resolution:
        """The whole index as a :class:`Resolution` (person of every record, every person)."""
        if not self._built:
            return Resolution(person_of={}, persons={}, stats=dict(stats))
        pids = self.sig_pid.a[self.rec_sig.a]
        refs = self.refs.array()
        return Resolution(persons=self._persons(refs, pids), stats=dict(stats), refs=refs,
                          ids=pids, locate=self.refs.lookup)

    @property
    def person_of(self) -> Mapping[str, str]:
        return _PersonOf(self)

    @property
    def members(self) -> Mapping[str, list[str]]:
        """Person id → its records (``len``: the number of persons)."""
        return _Members(self)

    def partition(self) -> set[frozenset[str]]:
        if not self._built:
            return set()
        persons = self._persons(object_array(self.refs.values), self.sig_pid.a[self.rec_sig.a])
        return {frozenset(persons[pid].refs) for pid in persons}

    # -- the first build: a full run, kept ------------------------------------------------

    def _build(self, delta: pd.DataFrame) -> Resolution:
        r = self.resolver
        self.tables = Tables()
        prep = r.prepare(delta, self.tables)
        f = prep.features
        i_all, j_all = r.candidate_pairs(prep)
        kept, levels = r.grade_bounded(f, i_all, j_all)
        i, j = i_all[kept], j_all[kept]
        score, tf = r.scores(f, i, j, levels)
        merged = r.merge(f, i, j, levels, score, tf, prep.labels)
        seed = self._seed
        previous = object_array([seed.get(x) for x in prep.refs.tolist()]) if seed else None
        resolution, record_pid = r.persons(prep.refs, merged.root[prep.sig_codes], previous,
                                           merged, prep.first_ref)
        resolution.stats.update({
            "records": len(prep.refs), "signatures": prep.sigs.n,
            "candidate_pairs": len(i_all), "scored_links": len(merged.links),
            "review_links": len(merged.doubts)})
        nsig = prep.sigs.n
        self.cols = list(r.signature_columns)
        # room for a few deliveries before an array must move
        room, records_room = 1024 + nsig // 32, 1024 + len(prep.refs) // 32
        self.sig_codes = Growing(np.stack([prep.sigs.codes(c).astype(np.int32)
                                           for c in self.cols], axis=1), room)
        self.first_ref = Growing(prep.first_ref.astype(object), room)
        self.alive = Growing(np.ones(nsig, dtype=bool), room)
        pid = np.empty(nsig, dtype=object)
        pid[prep.sig_codes] = record_pid
        self.sig_pid = Growing(pid, room)
        self.refs = Table()
        self.refs.values = prep.refs.tolist()
        self.rec_sig = Growing(prep.sig_codes, records_room)
        self.rec_emp = Growing(prep.employers, records_room)
        order = np.argsort(prep.sig_codes, kind="stable")
        ptr = np.zeros(nsig + 1, dtype=np.int64)
        np.cumsum(np.bincount(prep.sig_codes, minlength=nsig), out=ptr[1:])
        self.sig_records = _Lists(ptr, order.astype(np.int64))
        self.sig_employers = _Lists(prep.sigs.employer_ptr, prep.sigs.employer_code)
        hashes = _row_hash(self.sig_codes.a)
        by_hash = np.argsort(hashes, kind="stable")
        self.hash_keys, self.hash_sigs = hashes[by_hash], by_hash.astype(np.int64)
        self.hash_more: dict[int, list[int]] = {}
        self.key_table = Table()
        sig, keys = self._block_keys(f)
        self.blocks = _Postings(keys, sig)
        sig, keys = self._id_keys(f["id_valid"])
        self.ids = _Postings(keys, sig)
        bad = np.where(f["id_valid"] < 0, f["id_raw"], -1)
        sig, keys = self._id_keys(bad)
        self.bad_ids = _Postings(keys, sig)
        # the mistyped identifiers, by value: a valid one finds those a keystroke away
        self.bad_values: list[dict[str, int]] = [{} for _ in STRONG_KINDS]
        self.bad_near: list[dict[str, list[int]]] = [{} for _ in STRONG_KINDS]
        self._remember_bad(bad)
        sets = f["nameset"]
        has = np.flatnonzero(sets >= 0)
        self.names = _Postings(sets[has], has.astype(np.int64))
        self.counts = Growing(np.bincount(sets[has], minlength=len(self.tables.names.sets)),
                              room)
        self.edges: dict[int, dict[int, Edge]] = {}
        bound = _score_bound(r.review_threshold) - 1e-6
        for k in np.flatnonzero(score >= bound).tolist():
            self._link(int(i[k]), int(j[k]), (float(score[k]), float(tf[k]),
                                              levels[k].tobytes(), int(i[k])))
        persons = resolution.persons
        assert isinstance(persons, Persons)
        self.details: dict[str, Details] = dict(persons.details)
        self.live: set[str] = set(persons)  # the ids of the persons
        for ref in prep.refs.tolist():
            self._seed.pop(ref, None)
        # the look-up structures now, not in the first delivery
        for table in [self.refs, self.key_table, self.tables.names.keys,
                      *self.tables.columns.values()]:
            table.lookup([""] * 33)
            table.array()
        self._built = True
        return resolution

    # -- a delivery -----------------------------------------------------------------------

    def _update(self, delta: pd.DataFrame) -> Resolution:
        n = len(delta)
        refs = as_objects(delta["ref"], n).astype(str).astype(object)
        rows = np.stack([self.tables.column(c).encode(delta[c] if c in delta.columns else None,
                                                      n) for c in self.cols], axis=1)
        emp = self.tables.column("employer_id").encode(
            delta["employer_id"] if "employer_id" in delta.columns else None, n)
        rid = self.refs.lookup(refs.tolist())
        known = rid >= 0
        old_sig = np.where(known, self.rec_sig.a[np.maximum(rid, 0)], -1)
        same = known & (self.rec_emp.a[np.maximum(rid, 0)] == emp) & \
            (self.sig_codes.a[np.maximum(old_sig, 0)] == rows).all(axis=1)
        todo = np.flatnonzero(~same)
        if not len(todo):
            return Resolution(person_of={}, persons={}, stats={"records": 0})
        refs, rows, emp, rid, old_sig = refs[todo], rows[todo], emp[todo], rid[todo], \
            old_sig[todo]
        new_sig = self._signatures(rows)
        # the records' previous person ids (votes when their persons are named again)
        vote: dict[int, str | None] = {}
        moved: set[int] = set()
        for k in range(len(todo)):
            if rid[k] >= 0:
                moved.add(int(rid[k]))
            if rid[k] < 0:
                rid[k] = self._add_record(refs[k])
                vote[int(rid[k])] = self._seed.pop(refs[k], None)
            else:
                vote[int(rid[k])] = self.sig_pid.a[old_sig[k]]
        # 1. what changes: records per signature, and from them employers and first refs
        records: dict[int, set[int]] = {}
        for k in range(len(todo)):
            for s in (int(old_sig[k]), int(new_sig[k])):
                if s >= 0 and s not in records:
                    records[s] = set(self.sig_records.get(s))
        record_emp: dict[int, int] = {}
        for k in range(len(todo)):
            x = int(rid[k])
            if old_sig[k] >= 0:
                records[int(old_sig[k])].discard(x)
            records[int(new_sig[k])].add(x)
            record_emp[x] = int(emp[k])
        rec_emp, rec_ref = self.rec_emp.a, self.refs.values
        employers: dict[int, tuple[int, ...]] = {}
        first: dict[int, str | None] = {}
        changed: set[int] = set()
        alive = self.alive.a
        for s, members in records.items():
            held = {record_emp.get(x, int(rec_emp[x])) for x in members}
            held.discard(-1)
            employers[s] = tuple(sorted(held))
            first[s] = min((rec_ref[x] for x in members), default=None)
            if (not members) != (not alive[s]) or employers[s] != self.sig_employers.get(s) \
                    or first[s] != self.first_ref.a[s]:
                changed.add(s)
        dying = {s for s in changed if alive[s] and not records[s]}
        born = {s for s in changed if not alive[s] and records[s]}
        keys_before = self._keys_of([s for s in changed if alive[s]])
        keys_after = self._keys_of([s for s in changed if records[s]], employers)
        rescore = set(changed)
        rescore |= self._crossings(changed, dying, born, keys_before, keys_after)
        # 2. identifier components whose clusters may change are re-paired whole (which
        # pairs are scored depends on them): one losing a member, one that a new member
        # joins to another or that holds a conflict (its joins depend on every member)
        holders: dict[int, set[int]] = {}  # a new signature -> old holders of its ids
        born_list = sorted(born)
        sigs, keys = self._id_keys(self._valid(born_list))
        if len(keys):
            owner, holder_sigs = self.ids.members(keys)
            for k, t in zip(owner.tolist(), holder_sigs.tolist(), strict=True):
                if alive[t]:
                    holders.setdefault(born_list[int(sigs[k])], set()).add(t)
        touched = {s for s in changed if alive[s]} | set().union(*holders.values())
        near, component, cluster = self._structure(self._component(touched, edges=False))
        component_of = dict(zip(near.tolist(), component.tolist(), strict=True))
        broken = _conflicted(component, cluster) | {component_of[s] for s in dying
                                                     if s in component_of}
        joined: dict[int, set[int]] = {}  # component -> the new signatures joining it
        for s, old_holders in holders.items():
            names = {component_of[t] for t in old_holders}
            for name in names:
                joined.setdefault(name, set()).add(s)
            if len(names) > 1:
                broken |= names
        if joined:  # does a new signature bring a conflict into a component?
            grown = {t for t, c in component_of.items() if c in joined and c not in broken}
            grown_sigs, after, clusters = self._structure(grown.union(*joined.values()))
            bad = _conflicted(after, clusters)
            broken |= {component_of[t] for t, c in zip(grown_sigs.tolist(), after.tolist(),
                                                        strict=True)
                       if c in bad and t in component_of}
        repair = {s for s, c in component_of.items() if c in broken}
        # the old state's components of everything re-paired: merged again below
        seeds = {s for s in rescore | repair if alive[s]} | touched
        # a record with a previous id votes for it: the person it joins is named again, and
        # so is the one holding that id (a moved record's old person)
        named = {int(s) for s in old_sig.tolist() if s >= 0}
        named.update(int(new_sig[k]) for k in range(len(todo)) if vote[int(rid[k])] is not None)
        wanted = {pid for x, pid in vote.items() if pid is not None and x not in moved}
        if wanted:
            named.update(k for k, pid in enumerate(self.sig_pid.a.tolist()) if pid in wanted)
        merge = self._component(seeds | named, edges=True)
        # the records' moves, the signatures' new state, the blocks and identifiers
        for k in range(len(todo)):
            self.rec_sig.a[rid[k]] = new_sig[k]
            self.rec_emp.a[rid[k]] = emp[k]
        for s, members in records.items():
            self.sig_records.set(s, sorted(members))
        for s in changed:
            self.sig_employers.set(s, employers[s])
            self.first_ref.a[s] = first[s]
        self._repost(changed, dying, born, keys_before, keys_after)
        for s in dying:
            self.alive.a[s] = False
        for s in born:
            self.alive.a[s] = True
        # 3. re-pair and re-score
        self._unlink(repair | rescore)
        repair = {s for s in repair | rescore if self.alive.a[s]}
        pairs = self._rescore(repair)
        # 4. merge again the components, before and after, and name their persons
        merge = {s for s in merge | self._component(repair, edges=True) if self.alive.a[s]}
        resolution = self._merge(sorted(merge), vote, dying)
        resolution.stats["candidate_pairs"] = pairs
        return resolution

    # -- steps ----------------------------------------------------------------------------

    def _signatures(self, rows: IntArray) -> IntArray:
        """The signature of each row of codes, added (dead, without records) if new."""
        out = np.full(len(rows), -1, dtype=np.int64)
        hashes = _row_hash(rows)
        at = np.searchsorted(self.hash_keys, hashes)
        codes = self.sig_codes
        made: dict[bytes, int] = {}
        for k in range(len(rows)):
            h = int(hashes[k])
            candidates = list(self.hash_more.get(h, ()))
            p = int(at[k])
            while p < len(self.hash_keys) and int(self.hash_keys[p]) == h:
                candidates.append(int(self.hash_sigs[p]))
                p += 1
            row = rows[k]
            for s in candidates:
                if np.array_equal(codes.a[s], row):
                    out[k] = s
                    break
            else:
                key = row.tobytes()
                s = made.get(key, -1)
                if s < 0:
                    s = made[key] = codes.n
                    codes.extend(row[None, :])
                    self.first_ref.extend(object_array([None]))
                    self.alive.extend(np.zeros(1, dtype=bool))
                    self.sig_pid.extend(object_array([None]))
                    self.hash_more.setdefault(h, []).append(s)
                out[k] = s
        return out

    def _add_record(self, ref: str) -> int:
        x = self.refs.add(ref)
        self.rec_sig.extend(np.full(1, -1, dtype=np.int64))
        self.rec_emp.extend(np.full(1, -1, dtype=np.int64))
        return x

    def _arrays(self, sigs: Sequence[int],
                employers: Mapping[int, tuple[int, ...]] | None = None) -> SigArrays:
        index = np.asarray(sigs, dtype=np.int64)
        rows = self.sig_codes.a[index]
        ptr, codes = self.sig_employers.csr(index, employers)
        return SigArrays(self.tables, {c: rows[:, k] for k, c in enumerate(self.cols)}, ptr,
                         codes, self.first_ref.a[index])

    def _features(self, sigs: Sequence[int],
                  employers: Mapping[int, tuple[int, ...]] | None = None) -> Features:
        """The resolver's features of ``sigs`` (term frequencies: the whole index's)."""
        arrays = self._arrays(sigs, employers)
        self.resolver.features(arrays)["name_code"]  # a new name grows the name table
        missing = len(self.tables.names.sets) - self.counts.n
        if missing > 0:
            self.counts.extend(np.zeros(missing, dtype=np.int64))
        return self.resolver.features(arrays, self.counts.a)

    def _block_keys(self, f: Features) -> tuple[IntArray, IntArray]:
        sigs: list[IntArray] = []
        keys: list[IntArray] = []
        for rule in self.resolver.configuration.blocking:
            sig, rule_keys = rule.keys(f)
            if isinstance(rule_keys, np.ndarray) and rule_keys.dtype.kind in "iu":
                coded = rule_keys.astype(np.int64)
            else:
                coded = _STRING_KEYS + self.key_table.encode(object_array(list(rule_keys)))
            sigs.append(sig.astype(np.int64))
            keys.append(coded)
        if not sigs:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        return np.concatenate(sigs), np.concatenate(keys)

    @staticmethod
    def _id_keys(codes: IntArray) -> tuple[IntArray, IntArray]:
        sigs, kinds = np.nonzero(codes >= 0)
        return sigs.astype(np.int64), (codes[sigs, kinds].astype(np.int64) << 2) | kinds

    def _keys_of(self, sigs: list[int], employers: Mapping[int, tuple[int, ...]] | None = None,
                 ) -> dict[int, set[int]]:
        """The blocking keys of each signature (with ``employers`` instead of its own)."""
        out: dict[int, set[int]] = {s: set() for s in sigs}
        if sigs:
            sig, keys = self._block_keys(self._features(sigs, employers))
            for k, key in zip(sig.tolist(), keys.tolist(), strict=True):
                out[sigs[k]].add(key)
        return out

    def _valid(self, sigs: Sequence[int] | IntArray) -> IntArray:
        """The valid identifier codes of each signature, per kind (-1: none)."""
        rows = self.sig_codes.a[np.asarray(sigs, dtype=np.int64)].astype(np.int64)
        raw = rows[:, [self.cols.index(k) for k in STRONG_KINDS]]
        invalid = rows[:, self.cols.index("invalid_ids")]
        flags = self.tables.invalid_flags()
        bad = np.zeros(raw.shape, dtype=bool)
        has = np.flatnonzero(invalid >= 0)
        bad[has] = flags[invalid[has]]
        valid: IntArray = np.where(bad, -1, raw)
        return valid

    def _valid_keys(self, sigs: list[int]) -> list[list[int]]:
        """The identifier keys (valid identifiers) of each signature."""
        if not sigs:
            return []
        return [[(int(c) << 2) | k for k, c in enumerate(row) if c >= 0]
                for row in self._valid(sigs).tolist()]

    def _crossings(self, changed: set[int], dying: set[int], born: set[int],
                   before: Mapping[int, set[int]], after: Mapping[int, set[int]]) -> set[int]:
        """Signatures whose pairs change although they do not: every bearer of a name
        whose frequency weight changes, every member of a block that crosses
        ``max_block_size``, every holder of an identifier whose holders cross it (and the
        mistyped identifiers one keystroke from it)."""
        r = self.resolver
        out: set[int] = set()
        cap = r.max_block_size
        if dying or born:
            both = sorted(dying | born)
            sets = self._features(both)["nameset"].tolist()
            step: dict[int, int] = {}
            for s, ns in zip(both, sets, strict=True):
                if ns >= 0:
                    step[ns] = step.get(ns, 0) + (1 if s in born else -1)
            counts = self.counts.a
            for ns, d in step.items():
                was = int(counts[ns])
                if d and r.name_tf(was, r.tf_typical) != r.name_tf(was + d, r.tf_typical):
                    out.update(self.names.get(ns))
                    out.update(s for s, x in zip(both, sets, strict=True) if x == ns)
        grows: dict[int, int] = {}
        for s in changed:
            for key in before.get(s, set()) - after.get(s, set()):
                grows[key] = grows.get(key, 0) - 1
            for key in after.get(s, set()) - before.get(s, set()):
                grows[key] = grows.get(key, 0) + 1
        for key, d in grows.items():
            size = self.blocks.size(key)
            if (size <= cap) != (size + d <= cap):
                out.update(self.blocks.get(key))
                out.update(s for s in changed if key in after.get(s, ()))
        if dying or born:
            held: dict[int, int] = {}
            both = sorted(dying | born)
            for s, keys in zip(both, self._valid_keys(both), strict=True):
                for key in keys:
                    held[key] = held.get(key, 0) + (1 if s in born else -1)
            for key, d in held.items():
                size = self.ids.size(key)
                if (size <= cap) != (size + d <= cap):
                    out.update(self.ids.get(key))
                    out.update(s for s in born if key in self._valid_keys([s])[0])
                    kind = key & 3
                    value = self.tables.column(STRONG_KINDS[kind]).values[key >> 2]
                    if value.isdigit():
                        table = self.tables.column(STRONG_KINDS[kind])
                        for code in table.lookup(keystroke_repairs(value)).tolist():
                            if code >= 0:
                                out.update(self.bad_ids.get((code << 2) | kind))
        return out

    def _component(self, seeds: Iterable[int], edges: bool) -> set[int]:
        """Everything connected to ``seeds`` by a shared valid identifier (and, with
        ``edges``, a kept scored pair)."""
        seen = set(seeds)
        frontier = list(seen)
        while frontier:
            reached: set[int] = set()
            _, keys = self._id_keys(self._valid(frontier))
            if len(keys):
                reached.update(self.ids.members(keys)[1].tolist())
            if edges:
                for s in frontier:
                    reached.update(self.edges.get(s, ()))
            frontier = list(reached - seen)
            seen.update(frontier)
        return seen

    def _structure(self, sigs: Iterable[int]) -> tuple[IntArray, IntArray, IntArray]:
        """The identifier components among ``sigs`` (by their identifiers, whether posted
        or not): the signatures (sorted), each one's component and its identifier cluster
        (both named by a member signature)."""
        index = np.asarray(sorted(sigs), dtype=np.int64)
        valid = self._valid(index)
        owner, keys = self._id_keys(valid)
        nodes = pd.factorize(keys)[0].astype(np.int64) if len(keys) else keys
        label = components(len(index) + (int(nodes.max()) + 1 if len(nodes) else 0),
                           owner, len(index) + nodes)[: len(index)]
        clusters = id_clusters(valid, self.first_ref.a[index], self._exclusive(index))
        return index, index[label], index[clusters]

    def _exclusive(self, sigs: IntArray) -> IntArray | None:
        exclusive = self.resolver.configuration.exclusive
        if not exclusive:
            return None
        codes: IntArray = self.sig_codes.a[sigs, self.cols.index(exclusive)].astype(np.int64)
        return codes

    def _repost(self, changed: set[int], dying: set[int], born: set[int],
                before: Mapping[int, set[int]], after: Mapping[int, set[int]]) -> None:
        """The blocks, identifiers and names of the changed signatures, as they are now."""
        for s in changed:
            for key in before.get(s, set()) - after.get(s, set()):
                self.blocks.discard(key, s)
            for key in after.get(s, set()) - before.get(s, set()):
                self.blocks.add(key, s)
        if not (dying or born):
            return
        both = sorted(dying | born)
        f = self._features(both)
        valid, raw, sets = f["id_valid"], f["id_raw"], f["nameset"].tolist()
        bad = np.where(valid < 0, raw, -1)
        self._remember_bad(bad)
        counts = self.counts.a
        for k, s in enumerate(both):
            apply = self.ids.add if s in born else self.ids.discard
            for kind, code in enumerate(valid[k].tolist()):
                if code >= 0:
                    apply((code << 2) | kind, s)
            apply = self.bad_ids.add if s in born else self.bad_ids.discard
            for kind, code in enumerate(bad[k].tolist()):
                if code >= 0:
                    apply((code << 2) | kind, s)
            if sets[k] >= 0:
                if s in born:
                    self.names.add(sets[k], s)
                    counts[sets[k]] += 1
                else:
                    self.names.discard(sets[k], s)
                    counts[sets[k]] -= 1

    def _remember_bad(self, bad: IntArray) -> None:
        """Index the mistyped identifiers (digits only) so that a valid identifier finds
        those one keystroke away with a score of look-ups: by the value with one position
        masked (a digit changed there), and by value (two neighbours swapped)."""
        for kind, name in enumerate(STRONG_KINDS):
            values = self.tables.column(name).values
            known, near = self.bad_values[kind], self.bad_near[kind]
            for code in unique(bad[:, kind][bad[:, kind] >= 0]).tolist():
                value = values[code]
                if value in known or not value.isdigit():
                    continue
                known[value] = code
                for k in range(len(value)):
                    near.setdefault(value[:k] + "?" + value[k + 1:], []).append(code)

    def _one_keystroke(self, kind: int, value: str) -> set[int]:
        """The mistyped identifiers of ``kind`` one digit change or one neighbour swap
        from ``value`` (what :func:`keystroke_repairs` of them would reach)."""
        known, near = self.bad_values[kind], self.bad_near[kind]
        values = self.tables.column(STRONG_KINDS[kind]).values
        out: set[int] = set()
        for k in range(len(value)):
            for code in near.get(value[:k] + "?" + value[k + 1:], ()):
                if values[code] != value:
                    out.add(code)
            if k + 1 < len(value) and value[k] != value[k + 1]:
                swapped = known.get(value[:k] + value[k + 1] + value[k] + value[k + 2:])
                if swapped is not None:
                    out.add(swapped)
        return out

    def _unlink(self, sigs: Iterable[int]) -> None:
        """Drop every edge of ``sigs``."""
        for s in sigs:
            for t in self.edges.pop(s, {}):
                mine = self.edges.get(t)
                if mine is not None:
                    mine.pop(s, None)
                    if not mine:
                        del self.edges[t]

    def _link(self, a: int, b: int, edge: Edge) -> None:
        self.edges.setdefault(a, {})[b] = edge
        self.edges.setdefault(b, {})[a] = edge

    def _rescore(self, sigs: set[int]) -> int:
        """Pair ``sigs`` again with every candidate, score, and keep the review-band pairs
        as their edges. Returns the number of candidate pairs."""
        r = self.resolver
        if not sigs:
            return 0
        ordered = sorted(sigs)
        # identifier clusters of the signatures (their identifier components are in sigs)
        group = sorted(self._component(ordered, edges=False))
        fg = self._features(group)
        local = id_clusters(fg["id_valid"], fg.sigs.first_ref,
                            r.exclusive_codes(fg))
        label = {s: group[int(c)] for s, c in zip(group, local.tolist(), strict=True)}
        # candidates: the blocks of each signature, and identifier typos
        f = self._features(ordered)
        cap = r.max_block_size
        sig, keys = self._block_keys(f)
        sizes = self.blocks.sizes(keys)
        fine = (sizes >= 2) & (sizes <= cap)
        owner, partner = self.blocks.members(keys[fine])
        mine = np.asarray(ordered, dtype=np.int64)[sig[fine][owner]]
        other = partner != mine
        block = set(zip(np.minimum(mine, partner)[other].tolist(),
                        np.maximum(mine, partner)[other].tolist(), strict=True))
        typo: set[tuple[int, int]] = set()
        valid, raw = f["id_valid"], f["id_raw"]
        for k, s in enumerate(ordered):
            for kind, name in enumerate(STRONG_KINDS):
                table = self.tables.column(name)
                if valid[k, kind] >= 0:  # mistyped identifiers one keystroke from it
                    code = int(valid[k, kind])
                    value = table.values[code]
                    if not self.bad_near[kind] or not value.isdigit() or \
                            self.ids.size((code << 2) | kind) > cap:
                        continue
                    for bad in self._one_keystroke(kind, value):
                        for t in self.bad_ids.get((bad << 2) | kind):
                            typo.add((s, t) if s < t else (t, s))
                elif raw[k, kind] >= 0 and table.values[raw[k, kind]].isdigit():
                    value = table.values[raw[k, kind]]
                    for code in table.lookup(keystroke_repairs(value)).tolist():
                        key = (code << 2) | kind
                        if code >= 0 and self.ids.size(key) <= cap:
                            for t in self.ids.get(key):
                                typo.add((s, t) if s < t else (t, s))
        everyone = sorted({x for pair in block | typo for x in pair} | set(ordered))
        at = {s: k for k, s in enumerate(everyone)}
        fu = self._features(everyone)
        labels = np.asarray([label.get(s, -1 - s) for s in everyone], dtype=np.int64)

        def local_pairs(pairs: set[tuple[int, int]]) -> tuple[IntArray, IntArray]:
            listed = sorted(pairs)
            return (np.asarray([at[a] for a, _ in listed], dtype=np.int64),
                    np.asarray([at[b] for _, b in listed], dtype=np.int64))

        bi, bj = local_pairs(block)
        keep = r.worth_scoring(fu, bi, bj, labels)
        ti, tj = local_pairs(typo)
        keep_typo = labels[ti] != labels[tj]
        width = len(everyone)
        codes = unique(np.concatenate([bi[keep] * width + bj[keep],
                                       ti[keep_typo] * width + tj[keep_typo]]))
        lo, hi = codes // width, codes % width
        apart = r.not_exclusive(fu, lo, hi)
        i, j = r.oriented(fu.sigs.first_ref, lo[apart], hi[apart])
        kept, levels = r.grade_bounded(fu, i, j)
        i, j = i[kept], j[kept]
        score, tf = r.scores(fu, i, j, levels)
        bound = _score_bound(r.review_threshold) - 1e-6
        for k in np.flatnonzero(score >= bound).tolist():
            a, b = everyone[int(i[k])], everyone[int(j[k])]
            self._link(a, b, (float(score[k]), float(tf[k]), levels[k].tobytes(), a))
        return len(i)

    def _merge(self, sigs: list[int], vote: Mapping[int, str | None],
               dying: set[int]) -> Resolution:
        """Merge the components ``sigs`` again, name their persons, and store them."""
        r = self.resolver
        old = {self.sig_pid.a[s] for s in [*sigs, *dying]} - {None}
        for s in dying:
            self.sig_pid.a[s] = None
        if not sigs:
            self._forget(old)
            return Resolution(person_of={}, persons={}, stats={"records": 0})
        f = self._features(sigs)
        labels = id_clusters(f["id_valid"], f.sigs.first_ref,
                             r.exclusive_codes(f))
        at = {s: k for k, s in enumerate(sigs)}
        pi: list[int] = []
        pj: list[int] = []
        scores: list[float] = []
        tfs: list[float] = []
        levels: list[bytes] = []
        for s in sigs:
            for t, (score, tf, graded, first) in self.edges.get(s, {}).items():
                if s < t:
                    a, b = (s, t) if first == s else (t, s)
                    pi.append(at[a])
                    pj.append(at[b])
                    scores.append(score)
                    tfs.append(tf)
                    levels.append(graded)
        width = len(r.configuration.comparisons)
        level_matrix = (np.frombuffer(b"".join(levels), dtype=np.int8).reshape(-1, width)
                        if levels else np.zeros((0, width), dtype=np.int8))
        i = np.asarray(pi, dtype=np.int64)
        j = np.asarray(pj, dtype=np.int64)
        merged: Merged = r.merge(f, i, j, level_matrix, np.asarray(scores, dtype=np.float64),
                                 np.asarray(tfs, dtype=np.float64), labels)
        record_of: list[int] = []
        record_sig: list[int] = []
        for k, s in enumerate(sigs):
            for x in self.sig_records.get(s):
                record_of.append(x)
                record_sig.append(k)
        rids = np.asarray(record_of, dtype=np.int64)
        refs = object_array([self.refs.values[x] for x in record_of])
        previous = object_array([vote[x] if x in vote else self.sig_pid.a[sigs[k]]
                                 for x, k in zip(record_of, record_sig, strict=True)])
        root = merged.root[np.asarray(record_sig, dtype=np.int64)]
        self._forget(old)
        resolution, record_pid = r.persons(refs, root, previous, merged, f.sigs.first_ref,
                                           self.live)
        self.sig_pid.a[self.rec_sig.a[rids]] = record_pid
        persons = resolution.persons
        assert isinstance(persons, Persons)
        self.details.update(persons.details)
        self.live.update(persons)
        resolution.stats.update({"records": len(rids), "signatures": len(sigs),
                                 "scored_links": len(merged.links),
                                 "review_links": len(merged.doubts)})
        return resolution

    def _forget(self, pids: set[str]) -> None:
        for pid in pids:
            self.details.pop(pid, None)
        self.live.difference_update(pids)

    def _persons(self, refs: ObjectArray, pids: ObjectArray) -> Persons:
        has = np.flatnonzero(pids != None)  # noqa: E711
        codes, ids = pd.factorize(pids[has])
        order = has[np.argsort(codes, kind="stable")]
        starts = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(np.bincount(codes, minlength=len(ids)), out=starts[1:])
        return Persons(object_array(list(ids)), refs[order], starts, self.details)


class _PersonOf(Mapping[str, str]):
    """The index's ref → person id (the seeded ids of records not indexed yet too)."""

    def __init__(self, index: PersonIndex) -> None:
        self._index = index

    def __getitem__(self, ref: str) -> str:
        index = self._index
        if index._built:
            x = int(index.refs.lookup([ref])[0])
            if x >= 0:
                pid = index.sig_pid.a[index.rec_sig.a[x]]
                if pid is not None:
                    return str(pid)
        return index._seed[ref]

    def __iter__(self) -> Iterator[str]:
        index = self._index
        if index._built:
            yield from index.refs.values
        yield from index._seed

    def __len__(self) -> int:
        index = self._index
        return (len(index.refs) if index._built else 0) + len(index._seed)


class _Members(Mapping[str, list[str]]):
    def __init__(self, index: PersonIndex) -> None:
        self._index = index

    def _all(self) -> Persons:
        index = self._index
        return index._persons(object_array(index.refs.values), index.sig_pid.a[index.rec_sig.a])

    def __getitem__(self, pid: str) -> list[str]:
        person: Person = self._all()[pid]
        return person.refs

    def __iter__(self) -> Iterator[str]:
        return iter(self._all()) if self._index._built else iter(())

    def __len__(self) -> int:
        return len(self._index.live) if self._index._built else 0
