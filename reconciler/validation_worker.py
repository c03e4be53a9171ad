"""Reading and validating a delivery in a second process while the first one writes it.

The ingest has two halves of about equal cost: reading and validating rows (pure Python:
the CSV reader, :class:`~reconciler.contract.ChunkValidator`, the row hashes) and staging
them (the versions lookup and the bulk insert). In one process they take turns on one
core. A thread does not help: the writer needs the interpreter lock for every row it
binds, and the validating thread keeps it for its whole switch interval each time
(measured: the same 74 s for a 200k-worker world with and without the thread).

So a delivery that can be read again from elsewhere — :attr:`Delivery.reader
<connectors.base.Delivery.reader>`, a picklable callable that yields the same rows (a
file path, say) — is read and validated in a worker process, a chunk ahead, and the
decisions come back pickled through a pipe, which is the bounded queue: the worker blocks
writing the next chunk until the parent has taken the last (a pickled chunk of 5,000
payroll rows is about 1 MB; pickling and unpickling cost 3 µs a row against the 20 µs of
validating it). The parent still does everything that touches
the database, in the delivery's one transaction, so nothing about atomicity, versioning
or quarantine changes: the worker only answers "what does the contract make of these
rows". Measured on the 200k-worker world: see benchmarks/README.md.

The worker is a fresh interpreter (``python -c …``: not multiprocessing's ``spawn``,
which re-imports the caller's ``__main__``, nor ``fork``, unsafe beside a daemon's
threads), started once per pull at the first delivery that is worth it (a file of
:data:`WORKER_MIN_BYTES` or more), serving that pull's deliveries in turn. Tasks arrive on
its stdin: it ends when the pull closes it, or within a second of its parent's death (a
watchdog thread compares its parent PID), so a SIGKILLed run leaves no worker behind. A
delivery abandoned mid-way (the parent's write failed) kills the worker — it would still
be producing — and the next delivery starts a new one. An error raised while reading (an
unreadable file, a connector's own error) is raised in the parent as the same exception,
with the worker's traceback as a note.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from connectors.base import RawRow
from reconciler.contract import FEED_SPECS, ChunkValidator, ValidChunk
from reconciler.identity.identifiers import IdentifierProfile

CHUNK = 5000  # rows validated and staged together
WORKER_MIN_BYTES = 4 << 20  # a smaller delivery is read in-process (spawning costs ≈ 1 s)


@dataclass
class Checked:
    """One chunk as the contract sees it: the line of each row, the raw cells of the
    rejected ones (for the quarantine) and the validator's decisions."""

    lines: list[int]
    rejected_raws: dict[int, dict[str, Any]]
    result: ValidChunk


def check_rows(rows: Iterable[RawRow], validator: ChunkValidator) -> Iterator[Checked]:
    """``rows`` a chunk at a time, validated."""
    source = iter(rows)
    # a chunk taken in one call, not a row at a time through a Python loop
    while chunk := list(islice(source, CHUNK)):
        result = validator.validate([raw for _, raw in chunk])
        yield Checked([line for line, _ in chunk],
                      {i: chunk[i][1] for i, _ in result.rejected}, result)


class ValidationWorker:
    """A worker process validating deliveries for one pull (a context manager)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ValidationWorker:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def checked(self, reader: Callable[[], Iterable[RawRow]], feed: str,
                profile: IdentifierProfile) -> Iterator[Checked]:
        """The chunks of the rows ``reader()`` yields, validated in the worker."""
        process = self._process or self._start()
        assert process.stdin is not None and process.stdout is not None
        finished = False
        try:
            pickle.dump((reader, feed, profile), process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            process.stdin.flush()
            while True:
                kind, payload = pickle.load(process.stdout)  # noqa: S301 (our own child)
                if kind == "chunk":
                    yield payload
                    continue
                finished = True
                if kind == "error":
                    raise payload
                return
        except (EOFError, BrokenPipeError, pickle.UnpicklingError):
            finished = True
            self.close(kill=True)
            raise RuntimeError(
                "the validation process ended unexpectedly (exit code "
                f"{process.returncode}); the delivery is rolled back and read again by the "
                "next pull") from None
        finally:
            if not finished:  # left mid-delivery: the worker is still producing
                self.close(kill=True)

    def close(self, kill: bool = False) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if kill:
            process.kill()
        assert process.stdin is not None and process.stdout is not None
        with contextlib.suppress(OSError):
            process.stdin.close()  # end of tasks: the worker exits
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()

    def _start(self) -> subprocess.Popen[bytes]:
        # a fresh interpreter (not multiprocessing's spawn, which re-imports the caller's
        # __main__, nor fork, unsafe beside a daemon's threads), tasks on its stdin,
        # results on its stdout: the pipe is the bounded queue, and a parent that dies
        # closes it, which ends the worker
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from reconciler.validation_worker import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=1 << 20)
        return self._process


def serve() -> None:
    """The worker's loop: tasks (reader, feed, profile) from stdin, one after another,
    until stdin closes; results to stdout (anything else printed goes to stderr)."""
    threading.Thread(target=_orphaned, args=(os.getppid(),), daemon=True).start()
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=1 << 20)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    tasks = sys.stdin.buffer
    while True:
        try:
            reader, feed, profile = pickle.load(tasks)  # noqa: S301 (from our parent)
        except EOFError:
            return
        try:
            validator = ChunkValidator(FEED_SPECS[feed], profile)
            for checked in check_rows(reader(), validator):
                _send(out, ("chunk", checked))
            message: tuple[str, Any] = ("end", None)
        except BrokenPipeError:
            return
        except Exception as exc:  # handed to the parent, raised there
            message = ("error", _portable(exc))
        try:
            _send(out, message)
        except BrokenPipeError:
            return


def _orphaned(parent: int) -> None:
    """End the worker once its parent is gone (killed while the worker reads a slow
    source, before a write could find the pipe closed)."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def _send(out: Any, item: tuple[str, Any]) -> None:
    pickle.dump(item, out, protocol=pickle.HIGHEST_PROTOCOL)
    out.flush()


def _portable(exc: Exception) -> Exception:
    """``exc`` with the worker's traceback as a note, or — if it cannot be pickled — a
    RuntimeError that says what it was."""
    exc.add_note("(raised in the validation process)\n" + "".join(
        traceback.format_exception(exc)))
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 (our own bytes, this process)
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}\n{exc.__notes__[-1]}")
    return exc
