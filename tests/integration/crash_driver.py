"""The ``reconciler`` command with one crash point armed — for ``test_crash.py`` only.

``python crash_driver.py run --once`` is ``reconciler run --once`` (the real command, the
real code path) with one function of that path wrapped, chosen by
``RECONCILER_CRASH_AT=<point>[:<n>]``. On the wrapped function's n-th call (default 1) the
wrapper prints ``CRASHPOINT <point>:<n>`` on standard error and then blocks, so the test's
SIGKILL lands exactly there, inside whatever transaction is open at that moment. Nothing
of the product imports this module and the product code is not changed.

Points (``before``: the wrapper blocks before the call; ``after``: once it returned):

* ``chunk:<n>`` — after the n-th chunk of rows was written, with ``validation_worker.CHUNK`` lowered
  to 1,000 in this process so a delivery spans several chunks: mid-delivery, its
  ``deliveries`` row and some of its rows written, not committed.
* ``ingest:<n>`` — after ``Ingestor.ingest`` staged the n-th delivery (rows, quarantine,
  superseded versions retired, counts updated), before its transaction commits.
* ``act`` — after ``Actor.act`` returned: every finding, history row, event, registration
  and audit entry of the run written, the unit of work not yet committed.
* ``notify`` — before ``Reconciler.notify``: the act committed, the run not finished.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

MARKER = "CRASHPOINT"
MAX_PAUSE_SECONDS = 120  # an orphan (the test died first) exits on its own


def arm(point: str) -> None:
    from reconciler import ingest, validation_worker
    from reconciler.actions import Actor
    from reconciler.pipeline import Reconciler

    name, _, nth = point.partition(":")
    target = int(nth or 1)
    calls = 0

    def reached() -> None:
        nonlocal calls
        calls += 1
        if calls != target:
            return
        print(f"{MARKER} {name}:{target}", file=sys.stderr, flush=True)
        time.sleep(MAX_PAUSE_SECONDS)
        os._exit(3)

    def wrap(owner: type, attr: str, before: bool) -> None:
        original: Callable[..., Any] = getattr(owner, attr)

        @wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if before:
                reached()
            result = original(*args, **kwargs)
            if not before:
                reached()
            return result

        setattr(owner, attr, wrapper)

    if name == "chunk":
        validation_worker.CHUNK = 1000  # read in this process: the world's files are small
        wrap(ingest.Ingestor, "_chunk", before=False)
    elif name == "ingest":
        wrap(ingest.Ingestor, "ingest", before=False)
    elif name == "act":
        wrap(Actor, "act", before=False)
    elif name == "notify":
        wrap(Reconciler, "notify", before=True)
    else:
        raise SystemExit(f"unknown crash point {point!r}")


if __name__ == "__main__":
    arm(os.environ["RECONCILER_CRASH_AT"])
    from reconciler.cli import main

    main(prog_name="reconciler")
