"""The person index: resolve a delivery of changed records without re-resolving everyone.

Why it can be exact: the resolver's decisions inside one connected component of the graph
"shares a valid identifier, a blocking key, a repairable identifier typo or a person" never
depend on anything outside it — merging is best-first *within* the pairs of the component,
and the constraints are per cluster. So re-resolving the components a delivery touches,
with the same term frequencies the whole population gives, yields the partition a full run
would. ``tests/integration/test_incremental.py`` checks exactly that.

The index keeps, per record, its keys (the resolver's blocking keys, identifier values and
the repairs of a mistyped identifier, its name), the inverse key → records map, the person
of every record, and the count of distinct signatures per name (term frequency).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from reconciler.identity.comparisons import BlockingRule
from reconciler.identity.resolve import (
    DEFAULT,
    STRONG_KINDS,
    ContractBlocking,
    IdentityResolver,
    Person,
    Resolution,
    contract_row_keys,
    hopeless,
    keystroke_repairs,
    record_tokens,
)

Key = str


def record_keys(row: Mapping[str, object],
                blocking: Sequence[BlockingRule] = DEFAULT.blocking,
                ) -> tuple[frozenset[str], list[Key]]:
    """A record's name (token set, for term frequency) and every key it can be paired by:
    its identifiers (or the repairs of a mistyped one) and the keys of each blocking rule."""
    tokens = record_tokens(row.get("name_en"), row.get("name_ar"))
    keys: list[Key] = []
    invalid = str(row.get("invalid_ids") or "")
    for kind in STRONG_KINDS:
        value = row.get(kind)
        if not isinstance(value, str) or not value:
            continue
        if kind in invalid:
            keys.extend(f"id:{kind}:{r}" for r in keystroke_repairs(value) if value.isdigit())
        else:
            keys.append(f"id:{kind}:{value}")
    for rule in blocking:
        if isinstance(rule, ContractBlocking):  # reuse the tokens computed above
            keys.extend(contract_row_keys(row, tokens))
        else:
            keys.extend(rule.row_keys(row))
    name = frozenset(tokens)
    if tokens:
        keys.append(_tf_key(name))
    return name, keys


def _tf_key(name: frozenset[str]) -> Key:
    return "tf:" + " ".join(sorted(name))


def _valid_ids(row: Mapping[str, object]) -> dict[str, str]:
    invalid = str(row.get("invalid_ids") or "")
    return {k: str(row[k]) for k in STRONG_KINDS if row.get(k) and k not in invalid}


def _hopeless(a: Mapping[str, object], b: Mapping[str, object] | None) -> bool:
    return b is None or hopeless(_valid_ids(a), _valid_ids(b), a.get("passport_number"),
                                 b.get("passport_number"))


def _signature(row: Mapping[str, object], columns: Sequence[str]) -> tuple[object, ...]:
    return tuple(row.get(c) for c in columns)


@dataclass
class PersonIndex:
    resolver: IdentityResolver
    records: dict[str, dict[str, object]] = field(default_factory=dict)
    keys_of: dict[str, list[Key]] = field(default_factory=dict)
    refs_by_key: dict[Key, set[str]] = field(default_factory=lambda: defaultdict(set))
    person_of: dict[str, str] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    signatures: Counter[tuple[object, ...]] = field(default_factory=Counter)
    name_counts: Counter[frozenset[str]] = field(default_factory=Counter)
    persons: dict[str, Person] = field(default_factory=dict)
    last: Resolution | None = None
    _changed_names: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.resolver.name_counts = self.name_counts
        for ref, pid in self.person_of.items():  # seeded with the last run's person ids
            self.members[pid].add(ref)

    # -- public ---------------------------------------------------------------------------

    def apply(self, delta: pd.DataFrame) -> Resolution:
        """Add or replace the records of ``delta`` (by ``ref``) and re-resolve what they
        touch. The returned resolution covers the touched records only."""
        rows = _rows(delta)
        touched: set[str] = set()
        self._changed_names: set[str] = set()
        for row in rows:
            ref = str(row["ref"])
            if ref in self.records:
                self._forget(ref, touched)
            self._remember(ref, row, touched)
        affected = self._closure(touched)
        subset = pd.DataFrame([self.records[r] for r in sorted(affected)])
        resolution = self.resolver.resolve(subset, {r: self.person_of[r] for r in affected
                                                    if r in self.person_of})
        for ref in affected:
            old = self.person_of.get(ref)
            if old is not None:
                self.members[old].discard(ref)
                if not self.members[old]:
                    del self.members[old]
                self.persons.pop(old, None)
        for ref, pid in resolution.person_of.items():
            self.person_of[ref] = pid
            self.members[pid].add(ref)
        self.persons.update(resolution.persons)
        self.last = resolution
        return resolution

    def changed(self, records: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``records`` that are new or differ from what the index holds."""
        rows = _rows(records)
        keep = [i for i, row in enumerate(rows) if self.records.get(str(row["ref"])) != row]
        return records.iloc[keep]

    def resolution(self, stats: Mapping[str, int]) -> Resolution:
        """The whole index as a :class:`Resolution` (person of every record, every person)."""
        return Resolution(person_of=dict(self.person_of), persons=self.persons,
                          stats=dict(stats))

    def partition(self) -> set[frozenset[str]]:
        return {frozenset(refs) for refs in self.members.values()}

    # -- bookkeeping ----------------------------------------------------------------------

    def _remember(self, ref: str, row: dict[str, object], touched: set[str]) -> None:
        name, keys = record_keys(row, self.resolver.configuration.blocking)
        self.records[ref] = row
        self.keys_of[ref] = keys
        for key in keys:
            self.refs_by_key[key].add(ref)
        sig = _signature(row, self.resolver.signature_columns)
        self.signatures[sig] += 1
        if self.signatures[sig] == 1 and name:
            self._count(name, +1)
        touched.add(ref)

    def _forget(self, ref: str, touched: set[str]) -> None:
        row = self.records.pop(ref)
        name, _ = record_keys(row, self.resolver.configuration.blocking)
        for key in self.keys_of.pop(ref):
            self.refs_by_key[key].discard(ref)
            touched.update(self.refs_by_key[key])  # they lose a partner
        sig = _signature(row, self.resolver.signature_columns)
        self.signatures[sig] -= 1
        if self.signatures[sig] == 0:
            del self.signatures[sig]
            if name:
                self._count(name, -1)
        touched.update(self.members.get(self.person_of.get(ref, ""), ()))
        touched.discard(ref)

    def _count(self, name: frozenset[str], step: int) -> None:
        """Count a signature of ``name`` in or out; if that changes the name's weight, every
        record bearing the name is affected."""
        typical = self.resolver.tf_typical
        before = self.resolver.name_tf(self.name_counts[name], typical)
        self.name_counts[name] += step
        if self.resolver.name_tf(self.name_counts[name], typical) != before:
            self._changed_names.add(_tf_key(name))

    def _closure(self, start: Iterable[str]) -> set[str]:
        """Every record connected to ``start`` through a shared key or a shared person."""
        seen: set[str] = set()
        frontier = [r for r in start if r in self.records]
        seen.update(frontier)
        while frontier:
            ref = frontier.pop()
            neighbours: set[str] = set()
            row = self.records[ref]
            for key in self.keys_of.get(ref, ()):
                kind = key[:3]
                if kind == "tf:":
                    # a name's weight changes only when its count does
                    if key in self._changed_names:
                        neighbours |= self.refs_by_key[key]
                elif kind == "id:":
                    neighbours |= self.refs_by_key[key]
                else:
                    # a blocking key pairs only what the resolver would score: two valid
                    # identifiers of one kind that differ, without a shared passport, cannot
                    # link (the resolver prunes those pairs the same way)
                    neighbours.update(o for o in self.refs_by_key[key]
                                      if not _hopeless(row, self.records.get(o)))
            person = self.person_of.get(ref)
            if person is not None:
                neighbours |= self.members[person]
            for other in neighbours:
                if other not in seen and other in self.records:
                    seen.add(other)
                    frontier.append(other)
        return seen


def _rows(frame: pd.DataFrame) -> list[dict[str, object]]:
    clean = frame.astype(object).where(frame.notna(), None)
    return [dict(r) for r in clean.to_dict("records")]
