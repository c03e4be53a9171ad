"""One root error, three kinds of failure.

The scheduler, the relay and the notifier decide what to do from the kind alone:

* :class:`FatalError` — stop this unit of work and report; retrying cannot help
  (bad configuration, a partner answering 401, a schema the code does not know).
* :class:`RetriableError` — a passing fault (timeout, connection refused, lock held);
  try again with backoff.
* :class:`SkippableError` — this one item is bad (a malformed row); quarantine it and go on.

A message names the file / row / field and says what to do about it.
"""

from __future__ import annotations


class ReconcilerError(Exception):
    """Root of every error the reconciler raises on purpose."""


class FatalError(ReconcilerError):
    """Retrying will not help: fix the cause and run again."""


class RetriableError(ReconcilerError):
    """A passing fault: the same work may succeed later."""


class SkippableError(ReconcilerError):
    """One item is bad; the rest of the work goes on without it."""


class ConfigError(FatalError):
    """The configuration is invalid; ``problems`` lists every problem found, not just the first."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid configuration in {source}:\n{lines}")


class RowError(SkippableError):
    """A row breaks the feed contract; the reason is stored with the quarantined row."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        self.reason = reason
        self.field = field
        super().__init__(reason)
