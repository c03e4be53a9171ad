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

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Protocol

import pandas as pd
from sqlalchemy import ColumnElement, Connection, func, insert, select

from reconciler.storage import registrations, source_records

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

    def contributors(self, conn: Connection) -> pd.DataFrame:
        cols = [c for c in CONTRIBUTOR_COLUMNS if c != "source"]
        snap = _frame(conn, "contributors", [*cols[1:], "record_key"]).rename(
            columns={"record_key": "contributor_id"})
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

    def engagements(self, conn: Connection) -> pd.DataFrame:
        cols = [c for c in ENGAGEMENT_COLUMNS if c not in ("engagement_id", "registered_by")]
        snap = _frame(conn, "engagements", [*cols, "record_key"]).rename(
            columns={"record_key": "engagement_id"})
        snap["registered_by"] = "employer"
        own = self._own(conn, "engagement")
        if not own.empty:
            own = own[~own["engagement_id"].isin(snap["engagement_id"])]
            own["registered_by"] = "reconciler"
            for col in ("start_date", "end_date", "registered_on"):
                own[col] = own[col].map(lambda v: date.fromisoformat(v) if v else None)
        frames = [f for f in (snap, own) if not f.empty]
        if not frames:
            return pd.DataFrame(columns=ENGAGEMENT_COLUMNS)
        result = pd.concat(frames, ignore_index=True).reindex(columns=ENGAGEMENT_COLUMNS)
        return self._apply_corrections(conn, result)

    def engagements_of(self, conn: Connection, contributor_ids: list[str]) -> pd.DataFrame:
        merges = self._merges(conn)
        wanted = set(contributor_ids)
        wanted |= {m for m, survivor in merges.items() if survivor in wanted}
        wanted |= {merges[c] for c in list(wanted) if c in merges}
        cols = [c for c in ENGAGEMENT_COLUMNS if c not in ("engagement_id", "registered_by")]
        snap = _frame(conn, "engagements", [*cols, "record_key"],
                      source_records.c.contributor_id.in_(sorted(wanted))).rename(
            columns={"record_key": "engagement_id"})
        snap["registered_by"] = "employer"
        own = self._own(conn, "engagement")
        if not own.empty:
            own = own[own["contributor_id"].isin(wanted)
                      & ~own["engagement_id"].isin(snap["engagement_id"])]
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
        created = False
        contributor_id = request.contributor_id
        if contributor_id is None:
            if request.new_contributor is None:
                raise ValueError("a registration needs a contributor_id or a new contributor")
            contributor_id = self._mint(conn, self.contributor_prefix)
            payload = {"contributor_id": contributor_id, **asdict(request.new_contributor)}
            conn.execute(insert(registrations).values(
                kind="contributor", record_id=contributor_id, payload=payload,
                finding_id=request.finding_id, created_at=now))
            created = True
        engagement_id = self._mint(conn, self.engagement_prefix)
        conn.execute(insert(registrations).values(
            kind="engagement", record_id=engagement_id, finding_id=request.finding_id,
            created_at=now, payload={
                "engagement_id": engagement_id, "contributor_id": contributor_id,
                "employer_id": request.employer_id,
                "start_date": request.start_date.isoformat(), "end_date": None,
                "status": "ACTIVE", "registered_on": request.registered_on.isoformat(),
                "contributory_wage": request.contributory_wage,
                "occupation_code": request.occupation_code,
            }))
        return Registration(contributor_id, engagement_id, created)

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

    @staticmethod
    def _mint(conn: Connection, prefix: str) -> str:
        """The next id of this prefix: one past the highest minted so far (a range scan of
        the unique index on ``record_id`` — ids are fixed-width, so text order is number
        order). Not from the table's surrogate key: a PostgreSQL sequence does not roll back
        with a killed transaction, and a re-run after a crash must mint the ids an
        uninterrupted run would have (tests/integration/test_crash.py)."""
        width = 10 - len(prefix)
        newest = conn.execute(select(func.max(registrations.c.record_id)).where(
            registrations.c.record_id >= prefix + "0",
            registrations.c.record_id < prefix + ":")).scalar()
        number = int(newest[len(prefix):]) + 1 if newest else 1
        return f"{prefix}{number:0{width}d}"

    @staticmethod
    def _own(conn: Connection, kind: str) -> pd.DataFrame:
        rows = conn.execute(select(registrations.c.payload)
                            .where(registrations.c.kind == kind)
                            .order_by(registrations.c.id)).scalars().all()
        return pd.DataFrame([{k: v for k, v in r.items()
                              if k not in ("reversed_at", "reversal_reason")}
                             for r in rows if not r.get("reversed_at")])


def _frame(conn: Connection, feed: str, columns: list[str],
           *where: ColumnElement[bool]) -> pd.DataFrame:
    table = source_records
    rows = conn.execute(
        select(*[table.c[c] for c in columns])
        .where(table.c.feed == feed, table.c.is_current, *where)
        .order_by(table.c.id)
    ).all()
    return pd.DataFrame(rows, columns=columns)

