"""Ingest on both databases: read once, versions and history, quarantine, atomic deliveries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from connectors.filedrop import FileDropConnector
from reconciler.identity.identifiers import DEFAULT_PROFILE
from reconciler.ingest import pull_connector
from reconciler.storage import deliveries, quarantine, source_records

HEADER = ("contract_id,employer_id,residence_id,nationality,name_en,date_of_birth,start_date,"
          "status,basic_wage,updated_at\n")


def contract(cid: str, wage: str = "5000", updated: str = "2026-10-01T00:00:00Z",
             rid: str = "2398145710") -> str:
    return (f"{cid},7000000017,{rid},IND,Suresh Kumar Nair,1987-03-14,2023-05-01,ACTIVE,"
            f"{wage},{updated}\n")


def pull(engine: Engine, folder: Path) -> list:
    connector = FileDropConnector(name="contracts", feed="contracts", folder=folder)
    return pull_connector(engine.begin, connector, DEFAULT_PROFILE)


def rows(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(source_records.c.record_key, source_records.c.basic_wage,
                   source_records.c.is_current).order_by(source_records.c.id))]


def test_a_file_is_read_once_even_when_copied_under_another_name(
        engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(HEADER + contract("C1") + contract("C2"))
    assert [s.rows_new for s in pull(engine, tmp_path)] == [2]
    (tmp_path / "b.csv").write_text(HEADER + contract("C1") + contract("C2"))
    assert pull(engine, tmp_path) == []  # same bytes, same content hash: not a new delivery
    assert len(rows(engine)) == 2


def test_newer_version_supersedes_and_older_stays_in_history(
        engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "1.csv").write_text(HEADER + contract("C1", "5000", "2026-10-01T00:00:00Z"))
    pull(engine, tmp_path)
    # a raise (newer updated_at), the original again (a duplicate), and a stale older version
    (tmp_path / "2.csv").write_text(HEADER + contract("C1", "5500", "2026-10-15T00:00:00Z")
                                    + contract("C1", "5000", "2026-10-01T00:00:00Z")
                                    + contract("C1", "4000", "2026-09-01T00:00:00Z"))
    [stats] = pull(engine, tmp_path)
    assert (stats.rows_new, stats.rows_duplicate, stats.rows_superseded) == (1, 1, 2)
    assert rows(engine) == [("C1", 5000.0, False), ("C1", 5500.0, True), ("C1", 4000.0, False)]


def test_a_row_delivered_twice_in_one_file_is_stored_once(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "1.csv").write_text(HEADER + contract("C1") + contract("C1"))
    [stats] = pull(engine, tmp_path)
    assert (stats.rows_total, stats.rows_new, stats.rows_duplicate) == (2, 1, 1)


def test_bad_rows_are_quarantined_with_line_and_reason(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "1.csv").write_bytes(
        ("\ufeff" + HEADER + contract("C1") + contract("C2", wage="-5")
         + "C3,7000000017,2398145710,IND,Too,Many,Cells,1987-03-14,2023-05-01,ACTIVE,1,x\n"
         ).encode() + b"C4,7000000017,2398145710,IND,Bad \xff Byte,1987-03-14,2023-05-01,"
                      b"ACTIVE,1,2026-10-01T00:00:00Z\n")
    [stats] = pull(engine, tmp_path)
    assert (stats.rows_total, stats.rows_new, stats.rows_quarantined) == (4, 1, 3)
    with engine.connect() as conn:
        got = {r.line_no: r.reason for r in conn.execute(select(quarantine))}
    assert set(got) == {3, 4, 5}  # header is line 1; the BOM does not count as a row
    assert "basic_wage" in got[3]
    assert "more cells than the header" in got[4]
    assert "not valid UTF-8" in got[5]


def test_a_failing_delivery_leaves_nothing_behind(engine: Engine, tmp_path: Path) -> None:
    # The connector dies half-way through the file: the transaction rolls back, the file is
    # not marked delivered, and the next pull reads it whole.
    (tmp_path / "1.csv").write_text(HEADER + contract("C1") + contract("C2"))

    class Crash(FileDropConnector):
        def deliveries(self, already_seen):  # type: ignore[no-untyped-def]
            for delivery in super().deliveries(already_seen):
                def broken(rows: Iterator = delivery.rows) -> Iterator:
                    yield next(rows)
                    raise OSError("disk went away")
                yield type(delivery)(delivery.source, delivery.content_hash, broken())

    with pytest.raises(OSError):
        pull_connector(engine.begin, Crash(name="contracts", feed="contracts",
                                           folder=tmp_path), DEFAULT_PROFILE,
                       clock=lambda: datetime.now(UTC))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(deliveries)).scalar_one() == 0
    assert rows(engine) == []
    assert [s.rows_new for s in pull(engine, tmp_path)] == [2]


def test_looking_up_a_chunks_keys_reads_only_those_keys(tmp_path: Path) -> None:
    # Without statistics SQLite prefers ix_source_records_current (feed, is_current), which
    # walks every current row of the feed for each chunk: an ingest quadratic in the feed.
    # SQLite's query plan only (PostgreSQL's planner decides by cost, table by table).
    from sqlalchemy import event

    from reconciler.migrate import upgrade
    from reconciler.storage import create_db_engine

    engine = create_db_engine(f"sqlite:///{tmp_path}/plan.db")
    upgrade(engine)

    from reconciler.ingest import _current_versions

    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with engine.begin() as conn:
            assert _current_versions(conn, "contracts", ["C1", "C2"]) == {}
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    [(statement, parameters)] = [s for s in seen if "record_key" in s[0]]
    with engine.connect() as conn:
        plan = " ".join(str(row) for row in conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {statement}", parameters))
    assert "ix_source_records_current" not in plan and "record_key=?" in plan
    engine.dispose()


def test_the_current_version_of_each_key_is_found(engine: Engine, tmp_path: Path) -> None:
    from reconciler.ingest import _current_versions

    (tmp_path / "1.csv").write_text(HEADER + contract("C1", "5000", "2026-10-01T00:00:00Z")
                                    + contract("C2"))
    pull(engine, tmp_path)
    (tmp_path / "2.csv").write_text(HEADER + contract("C1", "5500", "2026-10-15T00:00:00Z"))
    pull(engine, tmp_path)
    with engine.connect() as conn:
        found = _current_versions(conn, "contracts", ["C1", "C2", "C3"])
    assert sorted(found) == ["C1", "C2"]
    assert found["C1"][2] == "2026-10-15T00:00:00+00:00"
