"""The contract every incremental connector passes (Singer SDK's idea of a reusable suite).

A connector's test module subclasses :class:`ConnectorContract` and provides one fixture,
``partner``, returning a :class:`PartnerHarness` — about three lines. The suite pulls through
the real ``pull_connector`` into a real database (SQLite and PostgreSQL, ``database_url``),
so it proves the whole path: rows, their cursor in the same transaction, resume.

Every scenario uses the contracts feed; a partner row is described in contract terms
(:class:`Row`) and each harness writes it in its partner's own shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pytest
from sqlalchemy import Connection, Engine, func, select

from connectors.base import IncrementalConnector
from reconciler.identity.identifiers import DEFAULT_PROFILE
from reconciler.ingest import DeliveryStats, pull_connector
from reconciler.migrate import upgrade
from reconciler.storage import create_db_engine, cursors, source_records

T0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    """One partner contract, in contract terms."""

    key: str
    updated_at: datetime
    wage: int = 5000


def rows(n: int, start: datetime = T0, step: timedelta = timedelta(minutes=1),
         prefix: str = "C") -> list[Row]:
    return [Row(f"{prefix}{i:03d}", start + i * step) for i in range(1, n + 1)]


class PartnerHarness(Protocol):
    def put(self, *rows: Row) -> None:
        """Add rows to the partner (or replace those with the same key)."""

    def connector(self, **declared: Any) -> IncrementalConnector:
        """A connector on this partner; ``declared`` overrides declaration keys."""

    def break_after(self, deliveries: int) -> None:
        """Make the partner fail for good right after ``deliveries`` were committed."""

    def heal(self) -> None:
        """Undo :meth:`break_after`."""

    def committed(self, deliveries: int) -> None:
        """Called after each committed delivery (a hook for faults the partner cannot
        script by itself)."""


@dataclass
class Pull:
    stats: list[DeliveryStats]

    @property
    def delivered(self) -> list[DeliveryStats]:
        return [s for s in self.stats if s.error is None]

    @property
    def errors(self) -> list[DeliveryStats]:
        return [s for s in self.stats if s.error is not None]

    @property
    def rows_total(self) -> int:
        return sum(s.rows_total for s in self.delivered)

    @property
    def rows_new(self) -> int:
        return sum(s.rows_new for s in self.delivered)


class ConnectorContract:
    """Subclass with a ``partner`` fixture; every test below then runs for that connector."""

    @pytest.fixture
    def engine(self, database_url: str) -> Iterator[Engine]:
        engine = create_db_engine(database_url)
        upgrade(engine)
        yield engine
        engine.dispose()

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def pull(engine: Engine, partner: PartnerHarness, **declared: Any) -> Pull:
        transactions = 0

        @contextmanager
        def begin() -> Iterator[Connection]:
            nonlocal transactions
            with engine.begin() as conn:
                yield conn
            transactions += 1
            if transactions > 1:  # the first one reads the seen hashes and the cursor
                partner.committed(transactions - 1)

        opener: Callable[[], AbstractContextManager[Connection]] = begin
        return Pull(pull_connector(opener, partner.connector(**declared), DEFAULT_PROFILE))

    @staticmethod
    def stored(engine: Engine) -> dict[str, list[tuple[float, bool]]]:
        """Every stored version by contract id: (basic_wage, is_current)."""
        out: dict[str, list[tuple[float, bool]]] = {}
        with engine.connect() as conn:
            for key, wage, current in conn.execute(
                    select(source_records.c.record_key, source_records.c.basic_wage,
                           source_records.c.is_current).order_by(source_records.c.id)):
                out.setdefault(key, []).append((wage, current))
        return out

    @staticmethod
    def cursor(engine: Engine, name: str) -> dict[str, Any] | None:
        with engine.connect() as conn:
            value = conn.execute(select(cursors.c.value).where(
                cursors.c.connector == name)).scalar_one_or_none()
        return json.loads(value) if value else None

    @staticmethod
    def quarantined(engine: Engine) -> int:
        from reconciler.storage import quarantine

        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(quarantine)).scalar_one())

    # -- the contract ----------------------------------------------------------------------

    def test_delivers_every_row_once_in_pages_and_a_second_pull_is_a_no_op(
            self, engine: Engine, partner: PartnerHarness) -> None:
        partner.put(*rows(7))
        first = self.pull(engine, partner, page_size=3)
        # 7 rows in pages of 3: 3 + 3 + 1, each its own delivery
        assert [s.rows_new for s in first.stats] == [3, 3, 1]
        assert first.errors == []
        assert {k: len(v) for k, v in self.stored(engine).items()} == {
            f"C{i:03d}": 1 for i in range(1, 8)}
        assert self.quarantined(engine) == 0
        assert self.cursor(engine, "partner") == {
            "updated_at": (T0 + timedelta(minutes=7)).isoformat(), "key": "C007"}
        again = self.pull(engine, partner, page_size=3)
        assert again.stats == []  # closed start, boundary dropped: nothing re-delivered

    def test_boundary_rows_with_equal_updated_at_are_neither_lost_nor_duplicated(
            self, engine: Engine, partner: PartnerHarness) -> None:
        same = T0 + timedelta(hours=1)
        partner.put(*rows(2), *[Row(f"D{i:03d}", same) for i in (1, 2, 3)])
        first = self.pull(engine, partner, page_size=2)
        assert first.rows_new == 5
        assert self.cursor(engine, "partner") == {"updated_at": same.isoformat(),
                                                  "key": "D003"}
        # two more rows at the very same instant, one sorting before the cursor's key
        # would be a partner bug (it would have been returned before), so both sort after
        partner.put(Row("D004", same), Row("D005", same), Row("E001", same + timedelta(1)))
        second = self.pull(engine, partner, page_size=2)
        # the closed start re-reads D001..D003 and drops them at the connector: only the
        # three new rows are delivered at all
        assert (second.rows_total, second.rows_new) == (3, 3)
        assert all(len(v) == 1 for v in self.stored(engine).values())
        assert len(self.stored(engine)) == 8

    def test_lag_window_rereads_late_rows_without_duplicates(
            self, engine: Engine, partner: PartnerHarness) -> None:
        partner.put(*rows(6))
        first = self.pull(engine, partner, page_size=4, lag_seconds=600)
        assert first.rows_new == 6
        # a row committed late at the partner, stamped 2.5 minutes before the cursor (C006)
        late = Row("L001", T0 + timedelta(minutes=3, seconds=30))
        partner.put(late)
        second = self.pull(engine, partner, page_size=4, lag_seconds=600)
        # the 10-minute window re-reads all six old rows plus the late one; only the late
        # one is new, the re-read ones are ingest no-ops, nothing is stored twice
        assert (second.rows_total, second.rows_new) == (7, 1)
        stored = self.stored(engine)
        assert len(stored) == 7 and all(len(v) == 1 for v in stored.values())
        # the cursor never moves back over the window
        assert self.cursor(engine, "partner") == {
            "updated_at": (T0 + timedelta(minutes=6)).isoformat(), "key": "C006"}
        third = self.pull(engine, partner, page_size=4, lag_seconds=600)
        assert third.rows_new == 0

    def test_a_stopped_pull_resumes_from_its_last_checkpoint(
            self, engine: Engine, partner: PartnerHarness) -> None:
        partner.put(*rows(9))
        partner.break_after(2)
        first = self.pull(engine, partner, page_size=2)
        # two pages committed (4 rows) with their cursor, then the partner failed: reported
        assert [s.rows_new for s in first.delivered] == [2, 2]
        assert len(first.errors) == 1 and first.errors[0].error
        assert first.errors[0].error_kind in ("fatal", "retriable")
        assert self.cursor(engine, "partner") == {
            "updated_at": (T0 + timedelta(minutes=4)).isoformat(), "key": "C004"}
        partner.heal()
        second = self.pull(engine, partner, page_size=2)
        # resumes after C004: rows 5..9 delivered once each, nothing before it again
        assert (second.rows_total, second.rows_new) == (5, 5)
        stored = self.stored(engine)
        assert sorted(stored) == [f"C{i:03d}" for i in range(1, 10)]
        assert all(len(v) == 1 for v in stored.values())

    def test_a_changed_row_is_delivered_again_as_a_new_version(
            self, engine: Engine, partner: PartnerHarness) -> None:
        partner.put(*rows(3))
        self.pull(engine, partner)
        partner.put(Row("C002", T0 + timedelta(hours=2), wage=6000))
        second = self.pull(engine, partner)
        assert (second.rows_total, second.rows_new) == (1, 1)
        assert self.stored(engine)["C002"] == [(5000.0, False), (6000.0, True)]

    def test_the_cursor_moves_only_with_the_rows_it_covers(
            self, engine: Engine, partner: PartnerHarness) -> None:
        partner.put(*rows(6))
        transactions = 0

        class Crash(Exception):
            pass

        @contextmanager
        def begin() -> Iterator[Connection]:
            nonlocal transactions
            transactions += 1
            with engine.begin() as conn:
                yield conn
                if transactions == 3:  # the second delivery dies before its commit
                    raise Crash

        with pytest.raises(Crash):
            pull_connector(begin, partner.connector(page_size=2), DEFAULT_PROFILE)
        # neither the second page's rows nor its cursor: both rolled back together
        assert sorted(self.stored(engine)) == ["C001", "C002"]
        assert self.cursor(engine, "partner") == {
            "updated_at": (T0 + timedelta(minutes=2)).isoformat(), "key": "C002"}
        again = self.pull(engine, partner, page_size=2)
        assert (again.rows_total, again.rows_new) == (4, 4)
        assert sorted(self.stored(engine)) == [f"C{i:03d}" for i in range(1, 7)]
