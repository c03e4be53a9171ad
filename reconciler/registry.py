"""The contributor registry, behind a seam.

:class:`RegistryGateway` is all the rest of the reconciler knows of the registry: read
contributors and engagements, register an engagement, and apply what an officer confirmed —
correct an engagement, correct a contributor's identity, merge duplicate contributors,
reverse a wrong auto-registration. :class:`EmbeddedRegistry` keeps the registry in this
database — the imported snapshot (``contributors`` / ``engagements`` feeds, staged like any
feed, history kept) plus what the reconciler itself wrote (``registrations``, by ``kind``:
``contributor``, ``engagement``, ``correction`` of an engagement, ``amendment`` of a
contributor, ``merge`` of duplicates), applied over the snapshot whenever it is read. The
snapshot itself is never rewritten: the institution's next snapshot carries the changes. An
institution plugs in its own registry by implementing the protocol.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Float,
    Integer,
    Numeric,
    Select,
    String,
    func,
    insert,
    select,
)

from reconciler.storage import bulk_insert, registrations, source_records

CONTRIBUTOR_COLUMNS = ["contributor_id", "national_id", "residence_id", "border_number",
                       "passport_number", "invalid_ids", "nationality", "name_en", "name_ar",
                       "date_of_birth", "sex", "source"]
ENGAGEMENT_COLUMNS = ["engagement_id", "contributor_id", "employer_id", "start_date",
                      "end_date", "status", "registered_on", "contributory_wage",
                      "occupation_code", "registered_by"]


@dataclass(frozen=True)
class NewContributor:
    national_id: str | None
    residence_id: str | None
    border_number: str | None
    passport_number: str | None
    nationality: str | None
    name_en: str | None
    name_ar: str | None
    date_of_birth: str | None
    sex: str | None


@dataclass(frozen=True)
class RegistrationRequest:
    """Register ``contributor_id`` (or a new contributor) at ``employer_id`` from ``start_date``."""

    employer_id: str
    start_date: date
    registered_on: date
    contributory_wage: float
    occupation_code: str | None
    contributor_id: str | None = None
    new_contributor: NewContributor | None = None
    finding_id: str | None = None


@dataclass(frozen=True)
class EngagementCorrection:
    """What an officer's confirmation changes on an engagement: the contributory wage
    (``wage_underdeclared``) or its end (``stale_engagement``, ``ghost_registration``)."""

    engagement_id: str
    finding_id: str
    contributory_wage: float | None = None
    end_date: date | None = None  # set: the engagement is ENDED on that day


@dataclass(frozen=True)
class ContributorCorrection:
    """What an officer's confirmation of an ``identity_mismatch`` changes on a contributor
    record: the fields the partners agree on (``date_of_birth``, ``nationality``, ``sex``)."""

    contributor_id: str
    finding_id: str
    changes: dict[str, str]


@dataclass(frozen=True)
class ContributorMerge:
    """A confirmed ``duplicate_contributor``: ``merged`` records are the same person as
    ``survivor``; their engagements continue under the survivor."""

    survivor: str
    merged: tuple[str, ...]
    finding_id: str


@dataclass(frozen=True)
class Registration:
    contributor_id: str
    engagement_id: str
    created_contributor: bool


class RegistryGateway(Protocol):
    def contributors(self, conn: Connection) -> pd.DataFrame:
        """Every contributor, columns :data:`CONTRIBUTOR_COLUMNS`."""
        ...

    def engagements(self, conn: Connection) -> pd.DataFrame:
        """Every engagement, columns :data:`ENGAGEMENT_COLUMNS` (dates as ``datetime.date``)."""
        ...

    def register(self, conn: Connection, request: RegistrationRequest,
                 now: datetime) -> Registration:
        """Register an engagement in the caller's unit of work."""
        ...

    def reverse(self, conn: Connection, finding_id: str, now: datetime,
                reason: str) -> list[str]:
        """Undo what was registered for ``finding_id`` (a wrong auto-registration), in the
        caller's unit of work; the ids of the records reversed (none: nothing to undo)."""
        ...

    def correct(self, conn: Connection, correction: EngagementCorrection,
                now: datetime) -> str:
        """Correct an engagement (declared wage, end of employment) in the caller's unit of
        work; the id of the correction."""
        ...

    def engagements_of(self, conn: Connection, contributor_ids: list[str]) -> pd.DataFrame:
        """The engagements of these contributors (as :meth:`engagements`, corrections and
        merges applied) — what one decision needs, without reading the whole registry."""
        ...

    def correct_contributor(self, conn: Connection, correction: ContributorCorrection,
                            now: datetime) -> str:
        """Correct a contributor's recorded identity; the id of the correction."""
        ...

    def merge_contributors(self, conn: Connection, merge: ContributorMerge,
                           now: datetime) -> str:
        """Record that several contributor records are one person; the id of the merge."""
        ...


class EmbeddedRegistry:
    """The registry kept in this database: the snapshot feeds plus our own registrations."""

    contributor_prefix = "R"  # ids the reconciler mints; a later snapshot row with the same id wins
    engagement_prefix = "RG"

    def contributors(self, conn: Connection, strings: dict[Any, Any] | None = None
                     ) -> pd.DataFrame:
        """``strings``: see :func:`read_frame`."""
        cols = [c for c in CONTRIBUTOR_COLUMNS if c != "source"]
        snap = _frame(conn, "contributors", [*cols[1:], "record_key"],
                      strings=strings).rename(
            columns={"record_key": "contributor_id"}, copy=False)
        snap["source"] = "snapshot"
        own = self._own(conn, "contributor")
        if not own.empty:
            own = own[~own["contributor_id"].isin(snap["contributor_id"])]
            own["source"] = "reconciler"
        frames = [f for f in (snap, own) if not f.empty]
        if not frames:
            return pd.DataFrame(columns=CONTRIBUTOR_COLUMNS)
        result = pd.concat(frames, ignore_index=True).reindex(columns=CONTRIBUTOR_COLUMNS)
        return self._apply_identity_changes(conn, result)

    def engagements(self, conn: Connection, strings: dict[Any, Any] | None = None
                    ) -> pd.DataFrame:
        """``strings``: see :func:`read_frame`."""
        return self._engagements(conn, None, strings)

    def engagements_of(self, conn: Connection, contributor_ids: list[str]) -> pd.DataFrame:
        merges = self._merges(conn)
        wanted = set(contributor_ids)
        wanted |= {m for m, survivor in merges.items() if survivor in wanted}
        wanted |= {merges[c] for c in list(wanted) if c in merges}
        return self._engagements(conn, wanted)

    def _engagements(self, conn: Connection, wanted: set[str] | None,
                     strings: dict[Any, Any] | None = None) -> pd.DataFrame:
        """The snapshot's engagements and our own registrations (a later snapshot row with
        the same id wins), corrections applied; only ``wanted`` contributors' if given."""
        cols = [c for c in ENGAGEMENT_COLUMNS if c not in ("engagement_id", "registered_by")]
        where = () if wanted is None else (source_records.c.contributor_id.in_(sorted(wanted)),)
        snap = _frame(conn, "engagements", [*cols, "record_key"], *where,
                      strings=strings).rename(columns={"record_key": "engagement_id"},
                                             copy=False)
        snap["registered_by"] = "employer"
        own = self._own(conn, "engagement")
        if not own.empty:
            keep = ~own["engagement_id"].isin(snap["engagement_id"])
            if wanted is not None:
                keep &= own["contributor_id"].isin(wanted)
            own = own[keep]
            own["registered_by"] = "reconciler"
            for col in ("start_date", "end_date", "registered_on"):
                own[col] = own[col].map(lambda v: date.fromisoformat(v) if v else None)
        frames = [f for f in (snap, own) if not f.empty]
        if not frames:
            return pd.DataFrame(columns=ENGAGEMENT_COLUMNS)
        result = pd.concat(frames, ignore_index=True).reindex(columns=ENGAGEMENT_COLUMNS)
        return self._apply_corrections(conn, result)

    def correct_contributor(self, conn: Connection, correction: ContributorCorrection,
                            now: datetime) -> str:
        amendment_id = self._mint(conn, "RA")
        conn.execute(insert(registrations).values(
            kind="amendment", record_id=amendment_id, finding_id=correction.finding_id,
            created_at=now, payload={"contributor_id": correction.contributor_id,
                                     **correction.changes}))
        return amendment_id

    def merge_contributors(self, conn: Connection, merge: ContributorMerge,
                           now: datetime) -> str:
        merge_id = self._mint(conn, "RM")
        conn.execute(insert(registrations).values(
            kind="merge", record_id=merge_id, finding_id=merge.finding_id, created_at=now,
            payload={"survivor": merge.survivor, "merged": list(merge.merged)}))
        return merge_id

    def _merges(self, conn: Connection) -> dict[str, str]:
        """merged contributor id -> surviving id (chains followed: A→B, B→C gives A→C)."""
        out: dict[str, str] = {}
        for row in self._own(conn, "merge").to_dict("records"):
            for merged in row["merged"]:
                out[str(merged)] = str(row["survivor"])
        for key in list(out):
            seen = {key}
            while out[key] in out and out[key] not in seen:
                seen.add(out[key])
                out[key] = out[out[key]]
        return out

    def _apply_identity_changes(self, conn: Connection,
                                contributors: pd.DataFrame) -> pd.DataFrame:
        """Amendments overwrite the fields they name; merged records leave the registry."""
        amendments = self._own(conn, "amendment")
        if not amendments.empty:
            index = {c: i for i, c in enumerate(contributors["contributor_id"])}
            for row in amendments.to_dict("records"):
                i = index.get(row["contributor_id"])
                if i is None:
                    continue
                for col in ("date_of_birth", "nationality", "sex"):
                    value = row.get(col)
                    if isinstance(value, str) and value:
                        contributors.at[i, col] = value
        merges = self._merges(conn)
        if merges:
            contributors = contributors[~contributors["contributor_id"].isin(merges)]
            contributors = contributors.reset_index(drop=True)
        return contributors

    def correct(self, conn: Connection, correction: EngagementCorrection,
                now: datetime) -> str:
        # Kept beside the snapshot, never written into it: the next snapshot from the
        # institution's registry carries the corrected value itself.
        correction_id = self._mint(conn, "RC")
        conn.execute(insert(registrations).values(
            kind="correction", record_id=correction_id, finding_id=correction.finding_id,
            created_at=now, payload={
                "engagement_id": correction.engagement_id,
                "contributory_wage": correction.contributory_wage,
                "end_date": correction.end_date.isoformat() if correction.end_date else None,
            }))
        return correction_id

    def _apply_corrections(self, conn: Connection, engagements: pd.DataFrame) -> pd.DataFrame:
        merges = self._merges(conn)
        if merges:
            engagements["contributor_id"] = engagements["contributor_id"].map(
                lambda c: merges.get(c, c))
        corrections = self._own(conn, "correction")
        if corrections.empty:
            return engagements
        index = {e: i for i, e in enumerate(engagements["engagement_id"])}
        for row in corrections.to_dict("records"):
            i = index.get(row["engagement_id"])
            if i is None:
                continue
            if row.get("contributory_wage") is not None:
                engagements.at[i, "contributory_wage"] = float(row["contributory_wage"])
            if row.get("end_date"):
                engagements.at[i, "end_date"] = date.fromisoformat(row["end_date"])
                engagements.at[i, "status"] = "ENDED"
        return engagements

    def register(self, conn: Connection, request: RegistrationRequest,
                 now: datetime) -> Registration:
        return self.register_many(conn, [request], now)[0]

    def register_many(self, conn: Connection, requests: Sequence[RegistrationRequest],
                      now: datetime) -> list[Registration]:
        """:meth:`register` each request, in order, in one insert: the ids are the ones
        registering them one by one would mint (the highest minted is read once per
        prefix; the caller's unit of work holds the audit chain's lock, which every writer
        of registrations takes first, so nobody mints in between)."""
        last: dict[str, int] = {}

        def mint(prefix: str) -> str:
            if prefix not in last:
                last[prefix] = self._last_minted(conn, prefix)
            last[prefix] += 1
            return f"{prefix}{last[prefix]:0{10 - len(prefix)}d}"

        rows: list[dict[str, Any]] = []
        done: list[Registration] = []
        for request in requests:
            created = False
            contributor_id = request.contributor_id
            if contributor_id is None:
                if request.new_contributor is None:
                    raise ValueError(
                        "a registration needs a contributor_id or a new contributor")
                contributor_id = mint(self.contributor_prefix)
                rows.append({"kind": "contributor", "record_id": contributor_id,
                             "payload": {"contributor_id": contributor_id,
                                         **asdict(request.new_contributor)},
                             "finding_id": request.finding_id, "created_at": now})
                created = True
            engagement_id = mint(self.engagement_prefix)
            rows.append({"kind": "engagement", "record_id": engagement_id,
                         "finding_id": request.finding_id, "created_at": now, "payload": {
                             "engagement_id": engagement_id, "contributor_id": contributor_id,
                             "employer_id": request.employer_id,
                             "start_date": request.start_date.isoformat(), "end_date": None,
                             "status": "ACTIVE",
                             "registered_on": request.registered_on.isoformat(),
                             "contributory_wage": request.contributory_wage,
                             "occupation_code": request.occupation_code,
                         }})
            done.append(Registration(contributor_id, engagement_id, created))
        bulk_insert(conn, registrations, rows)
        return done

    def reverse(self, conn: Connection, finding_id: str, now: datetime,
                reason: str) -> list[str]:
        # Never deleted: the row stays (its id is never minted again), marked reversed, and
        # drops out of the registry as the reconciler reads it.
        rows = conn.execute(select(registrations.c.id, registrations.c.record_id,
                                   registrations.c.payload)
                            .where(registrations.c.finding_id == finding_id)).all()
        done = []
        for row_id, record_id, payload in rows:
            if payload.get("reversed_at"):
                continue
            conn.execute(registrations.update().where(registrations.c.id == row_id).values(
                payload={**payload, "reversed_at": now.isoformat(), "reversal_reason": reason}))
            done.append(str(record_id))
        return done

    @classmethod
    def _mint(cls, conn: Connection, prefix: str) -> str:
        """The next id of this prefix: one past the highest minted so far."""
        return f"{prefix}{cls._last_minted(conn, prefix) + 1:0{10 - len(prefix)}d}"

    @staticmethod
    def _last_minted(conn: Connection, prefix: str) -> int:
        """The number of the highest id minted with this prefix, 0 if none: a range scan of
        the unique index on ``record_id`` — ids are fixed-width, so text order is number
        order. Not from the table's surrogate key: a PostgreSQL sequence does not roll back
        with a killed transaction, and a re-run after a crash must mint the ids an
        uninterrupted run would have (tests/integration/test_crash.py)."""
        newest = conn.execute(select(func.max(registrations.c.record_id)).where(
            registrations.c.record_id >= prefix + "0",
            registrations.c.record_id < prefix + ":")).scalar()
        return int(newest[len(prefix):]) if newest else 0

    @staticmethod
    def _own(conn: Connection, kind: str) -> pd.DataFrame:
        rows = conn.execute(select(registrations.c.payload)
                            .where(registrations.c.kind == kind)
                            .order_by(registrations.c.id)).scalars().all()
        return pd.DataFrame([{k: v for k, v in r.items()
                              if k not in ("reversed_at", "reversal_reason")}
                             for r in rows if not r.get("reversed_at")])


def _frame(conn: Connection, feed: str, columns: list[str],
           *where: ColumnElement[bool], strings: dict[Any, Any] | None = None
           ) -> pd.DataFrame:
    table = source_records
    return read_frame(conn, select(*[table.c[c] for c in columns])
                      .where(table.c.feed == feed, table.c.is_current, *where)
                      .order_by(table.c.id), distinct=("record_key",), strings=strings)


READ_CHUNK = 50_000  # rows fetched from the driver at a time
# the columns whose values recur across the feeds and the registry, shared through the
# caller's table: a worker's identifiers and names are in every feed
SHARED_ACROSS_FEEDS = ("national_id", "residence_id", "border_number", "passport_number",
                       "name_en", "name_ar")


def read_frame(conn: Connection, stmt: Select[Any], distinct: Collection[str] = (),
               strings: dict[Any, Any] | None = None,
               across: Collection[str] = SHARED_ACROSS_FEEDS) -> pd.DataFrame:
    """``stmt``'s rows as a DataFrame, read column-wise from the driver's own cursor.

    The same frame as ``pd.DataFrame(conn.execute(stmt).all(), columns=…)`` — the same
    values (each column goes through the result processor SQLAlchemy would apply) and the
    same dtypes — at a fraction of the time and memory: no ``Row`` per row, a processor
    call per *distinct* value, and equal text values share one ``str`` object (a feed
    repeats its employer, status, nationality, dates and, month after month, its names:
    at a million workers the duplicates alone would take gigabytes). PostgreSQL streams
    the rows through a server-side cursor, so the driver never holds the whole result.
    Parameters of ``stmt`` are passed to the driver as they are (text and numbers).
    ``distinct``: columns whose values are all different (keys), not worth sharing.
    ``strings``: a table of text values shared across reads for the ``across`` columns (the
    same identifier or name in every feed is then one object); every other column shares
    within itself (a small table: cheaper than one big one for a few distinct values).
    """
    dialect = conn.dialect
    compiled: Any = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params = dict(compiled.construct_params())
    names = [str(c.key) for c in stmt.selected_columns]
    raw: Any = conn.connection.driver_connection
    with gc_paused():
        if dialect.name == "postgresql":
            cursor = raw.cursor(name=f"reconciler_read_{uuid.uuid4().hex[:12]}")
            cursor.itersize = READ_CHUNK
            cursor.execute(str(compiled), params)
        else:
            cursor = raw.cursor()
            cursor.execute(str(compiled), [params[k] for k in compiled.positiontup or ()]
                           if dialect.paramstyle == "qmark" else params)
        try:
            columns: list[_Column] = []
            while rows := cursor.fetchmany(READ_CHUNK):
                if not columns:
                    columns = [_Column.of(column, coltype[1], dialect, distinct,
                                          strings if column.key in across else None)
                               for column, coltype in zip(stmt.selected_columns,
                                                          cursor.description, strict=True)]
                for column, chunk in zip(columns, zip(*rows, strict=True), strict=True):
                    column.take(chunk)
                del rows
        finally:
            cursor.close()
        if not columns:
            return pd.DataFrame(columns=names)
        data = {name: column.array() for name, column in zip(names, columns, strict=True)}
        del columns
        return pd.DataFrame(data, copy=False).infer_objects(copy=False)


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a bulk read or write: the millions of tuples a
    driver hands over are never cycles, yet each batch of them sets off collections that
    walk every live container (a third of the read time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Column:
    """One column of a read, converted chunk by chunk as the rows arrive — so a chunk's
    duplicate strings are freed (and their memory reused by the next chunk) before the
    next is fetched, instead of all of them living until the end of the read."""

    def __init__(self, process: Any, table: dict[Any, Any] | None, own: bool) -> None:
        self.process = process  # SQLAlchemy's result processor, or None
        self.table = table  # values seen (raw -> value); None: not shared
        self.own = own  # the table is this column's alone (not the caller's ``strings``)
        self.values: list[Any] = []

    @classmethod
    def of(cls, column: Any, coltype: Any, dialect: Any, distinct: Collection[str],
           strings: dict[Any, Any] | None) -> _Column:
        kind = column.type
        process = kind.dialect_impl(dialect).result_processor(dialect, coltype)
        if isinstance(kind, Float | Numeric | Integer | JSON) or column.key in distinct:
            return cls(process, None, own=False)
        if process is None and isinstance(kind, String) and strings is not None:
            return cls(process, strings, own=False)
        return cls(process, {}, own=True)

    def take(self, chunk: tuple[Any, ...]) -> None:
        table, process = self.table, self.process
        if table is None:
            self.values.extend(chunk if process is None else map(process, chunk))
            return
        if process is None:
            self.values.extend(map(table.setdefault, chunk, chunk))
        else:  # once per distinct raw value
            for raw in set(chunk).difference(table):
                table[raw] = None if raw is None else process(raw)
            self.values.extend(map(table.__getitem__, chunk))
        if self.own and process is None and len(self.values) == len(chunk) \
                and len(table) > 0.9 * len(chunk):
            self.table = None  # nearly all different (names, identifiers): not worth it

    def array(self) -> npt.NDArray[Any]:
        out = np.empty(len(self.values), dtype=object)
        out[:] = self.values
        self.values = []
        return out
