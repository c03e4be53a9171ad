"""Large deliveries are read and validated in a second process: the same outcome as in
one, errors raised where the pull can see them, nothing committed from a delivery whose
worker failed, and no worker left behind by a killed run. SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from connectors.base import Delivery
from connectors.filedrop import FileDropConnector, read_csv_rows
from reconciler import ingest, validation_worker
from reconciler.contract import FEED_SPECS
from reconciler.errors import RetriableError
from reconciler.identity.identifiers import DEFAULT_PROFILE
from reconciler.ingest import Ingestor, pull_connector
from reconciler.storage import deliveries, quarantine, source_records
from reconciler.synth.world import WorldSpec, generate_world, write_world
from reconciler.validation_worker import ValidationWorker
from tests.integration import readers

BAD_ROWS = (
    # a bad date, a bad wage, a surplus cell, a missing cell, a failed check digit (kept,
    # listed as invalid), end before start, bytes that are not UTF-8
    "K9,7000000017,2398145711,IND,Bad Check,1987-03-14,2023-05-01,,ACTIVE,5000,"
    "2026-10-01T00:00:00Z\n"
    "K10,7000000017,2398145710,IND,Bad Date,1987-13-14,2023-05-01,,ACTIVE,5000,"
    "2026-10-01T00:00:00Z\n"
    "K11,7000000017,2398145710,IND,Bad Wage,1987-03-14,2023-05-01,,ACTIVE,lots,"
    "2026-10-01T00:00:00Z\n"
    "K12,7000000017,2398145710,IND,Surplus,1987-03-14,2023-05-01,,ACTIVE,5000,"
    "2026-10-01T00:00:00Z,more\n"
    "K13,7000000017,2398145710,IND,Missing,1987-03-14\n"
    "K14,7000000017,2398145710,IND,Backwards,1987-03-14,2023-05-01,2022-01-01,ACTIVE,5000,"
    "2026-10-01T00:00:00Z\n"
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated world's inbox, and a contracts file with malformed rows in it."""
    root = tmp_path_factory.mktemp("world")
    write_world(generate_world(WorldSpec(workers=1500, seed=3, as_of=date(2026, 11, 1))),
                root / "inbox", root / "truth")
    contracts = sorted((root / "inbox" / "contracts").glob("*.csv"))[-1]
    with contracts.open("ab") as out:
        out.write(BAD_ROWS.replace("K10", "C-BAD-10").encode())
        out.write("K15,7000000017,2398145710,IND,Not \xff UTF-8,1987-03-14,2023-05-01,,ACTIVE,"
                  "5000,2026-10-01T00:00:00Z\n".encode("latin-1"))
    return root / "inbox"


def staged(engine: Engine) -> dict[str, Any]:
    """Everything the pull wrote, without the ids and times that differ between runs."""
    with engine.connect() as conn:
        records = sorted(tuple(str(v) for v in row) for row in conn.execute(select(
            *[c for c in source_records.c if c.key not in ("id", "delivery_id")])))
        held = sorted(tuple(str(v) for v in row) for row in conn.execute(select(
            quarantine.c.feed, quarantine.c.source, quarantine.c.line_no, quarantine.c.field,
            quarantine.c.reason, quarantine.c.raw)))
        files = sorted(tuple(str(v) for v in row) for row in conn.execute(select(
            deliveries.c.feed, deliveries.c.source, deliveries.c.content_hash,
            deliveries.c.rows_total, deliveries.c.rows_new, deliveries.c.rows_duplicate,
            deliveries.c.rows_superseded, deliveries.c.rows_quarantined)))
    return {"records": records, "quarantine": held, "deliveries": files}


def pull_all(engine: Engine, inbox: Path, worker: ValidationWorker | None) -> list[Any]:
    stats = []
    for folder, feed in [("registry", "contributors"), ("contracts", "contracts"),
                         ("permits", "permits"), ("payroll", "payroll")]:
        pattern = "contributors*.csv" if feed == "contributors" else "*.csv"
        connector = FileDropConnector(name=feed, feed=feed, folder=inbox / folder,
                                      pattern=pattern)
        stats += pull_connector(engine.begin, connector, DEFAULT_PROFILE, worker=worker)
    return stats


def test_a_worker_stages_exactly_what_one_process_stages(
        engine: Engine, world: Path, tmp_path: Path, database_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    one = pull_all(engine, world, None)
    alone = staged(engine)
    assert sum(s.rows_quarantined for s in one) >= 6
    assert any("UTF-8" in row[4] for row in alone["quarantine"])
    # a second, empty database of the same kind, through the worker
    from reconciler.migrate import upgrade
    from reconciler.storage import create_db_engine

    if database_url.startswith("sqlite"):
        other_url = f"sqlite:///{tmp_path / 'other.db'}"
    else:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("DROP DATABASE IF EXISTS worker_other")
            conn.exec_driver_sql("CREATE DATABASE worker_other")
        other_url = engine.url.set(database="worker_other").render_as_string(False)
    other = create_db_engine(other_url)
    upgrade(other)
    monkeypatch.setattr(ingest, "WORKER_MIN_BYTES", 0)  # every file through the worker
    calls: list[str] = []
    real = ValidationWorker.checked

    def counted(self: ValidationWorker, *args: Any) -> Any:
        calls.append(args[1])
        return real(self, *args)

    monkeypatch.setattr(ValidationWorker, "checked", counted)
    try:
        with ValidationWorker() as worker:
            two = pull_all(other, world, worker)
            process = worker._process
            assert process is not None and process.poll() is None  # one worker, reused
        assert process.poll() is not None  # and gone with the pull
        assert sorted(set(calls)) == ["contracts", "contributors", "payroll", "permits"]
        assert len(calls) == len(two)
        assert [vars(s) for s in two] == [vars(s) for s in one]
        assert staged(other) == alone
    finally:
        other.dispose()


def _delivery(path: Path, reader: Any) -> Delivery:
    return Delivery(source=str(path), content_hash=f"h-{path.name}-{time.time_ns()}",
                    rows=read_csv_rows(path), reader=reader, size=1 << 30)


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_an_error_while_reading_is_raised_in_the_pull_and_nothing_is_staged(
        engine: Engine, world: Path) -> None:
    path = sorted((world / "payroll").glob("*.csv"))[0]
    ingestor = Ingestor(FEED_SPECS["payroll"], DEFAULT_PROFILE)
    with ValidationWorker() as worker:
        with pytest.raises(RetriableError, match="timed out after 600 rows") as caught, \
                engine.begin() as conn:
            ingestor.ingest(conn, "payroll", _delivery(
                path, partial(readers.failing_after, path, 600)), _now(), worker)
        assert "raised in the validation process" in "".join(caught.value.__notes__)
        assert _count(engine, source_records) == _count(engine, deliveries) == 0
        # the worker serves the next delivery
        with engine.begin() as conn:
            stats = ingestor.ingest(conn, "payroll", _delivery(
                path, partial(read_csv_rows, path)), _now(), worker)
    assert stats.rows_new > 600 and _count(engine, source_records) == stats.rows_new


def test_a_worker_that_dies_fails_the_delivery_and_the_next_one_starts_afresh(
        engine: Engine, world: Path) -> None:
    path = sorted((world / "payroll").glob("*.csv"))[0]
    ingestor = Ingestor(FEED_SPECS["payroll"], DEFAULT_PROFILE)
    with ValidationWorker() as worker:
        with pytest.raises(RuntimeError, match=r"ended unexpectedly \(exit code 3\)"), \
                engine.begin() as conn:
            ingestor.ingest(conn, "payroll", _delivery(
                path, partial(readers.dying_after, path, 500)), _now(), worker)
        assert worker._process is None
        assert _count(engine, source_records) == _count(engine, deliveries) == 0
        with engine.begin() as conn:
            stats = ingestor.ingest(conn, "payroll", _delivery(
                path, partial(read_csv_rows, path)), _now(), worker)
    assert stats.rows_new == _count(engine, source_records) > 500


def test_a_killed_pull_leaves_no_worker_behind(world: Path, tmp_path: Path) -> None:
    path = sorted((world / "payroll").glob("*.csv"))[0]
    pid_file = tmp_path / "worker.pid"
    script = textwrap.dedent(f"""
        from functools import partial
        from pathlib import Path
        from reconciler.validation_worker import ValidationWorker
        from reconciler.identity.identifiers import DEFAULT_PROFILE
        from tests.integration import readers
        path, pid_file = Path({str(path)!r}), Path({str(pid_file)!r})
        worker = ValidationWorker()
        for _ in worker.checked(partial(readers.slow, path, pid_file), "payroll",
                                DEFAULT_PROFILE):
            pass
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[2])
    try:
        for _ in range(300):
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.1)
        child = int(pid_file.read_text())
        assert _alive(child)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        for _ in range(100):  # the worker's next write finds the pipe closed
            if not _alive(child):
                break
            time.sleep(0.1)
        assert not _alive(child), "the worker outlived its killed parent"
    finally:
        parent.kill()


def test_the_pipeline_starts_a_worker_only_with_a_second_core(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    with ingest.validation_worker() as worker:
        assert worker is None
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    with ingest.validation_worker() as worker:
        assert isinstance(worker, validation_worker.ValidationWorker)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
