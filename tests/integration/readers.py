"""Row readers for the validation worker's tests: module-level, so the worker process
can unpickle them (it imports this module)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from connectors.base import RawRow
from connectors.filedrop import read_csv_rows
from reconciler.errors import RetriableError


def failing_after(path: Path, rows: int) -> Iterator[RawRow]:
    """The file's rows, then the partner's error (a page that times out, say)."""
    for n, row in enumerate(read_csv_rows(path)):
        if n == rows:
            raise RetriableError(f"partner timed out after {rows} rows")
        yield row


def dying_after(path: Path, rows: int) -> Iterator[RawRow]:
    """The file's rows, then the process dies without a word (the OOM killer, say)."""
    for n, row in enumerate(read_csv_rows(path)):
        if n == rows:
            os._exit(3)
        yield row


def slow(path: Path, pid_file: Path) -> Iterator[RawRow]:
    """Writes the worker's PID, then the file's rows, one a second."""
    pid_file.write_text(str(os.getpid()))
    for row in read_csv_rows(path):
        time.sleep(1)
        yield row
