"""Retries for connectors: only :class:`RetriableError` is retried, with capped exponential
backoff and full jitter, never sooner than a partner's ``Retry-After``.

A partner asking to wait longer than the cap is not waited for inside the pull: the error
is raised (and reported) and the next scheduled pull tries again.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from reconciler.errors import RetriableError

T = TypeVar("T")

log = logging.getLogger(__name__)


class RetryLater(RetriableError):
    """A passing fault; ``retry_after`` is the partner's own hint in seconds, if it gave one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = field(default=random.random)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        ceiling = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        jittered = ceiling * self.jitter()
        if retry_after is not None:
            # never earlier than asked; a little jitter so replicas do not return in step
            return float(retry_after + self.backoff_seconds * self.jitter())
        return float(jittered)

    def call(self, work: Callable[[], T], on_retry: Callable[[RetriableError, float], None]
             | None = None) -> T:
        """``work()``, retried on :class:`RetriableError` up to ``max_attempts`` in all."""
        attempt = 1
        while True:
            try:
                return work()
            except RetriableError as exc:
                hint = exc.retry_after if isinstance(exc, RetryLater) else None
                if attempt >= self.max_attempts or (
                        hint is not None and hint > self.max_backoff_seconds):
                    raise
                wait = self.delay(attempt, hint)
                log.warning("retrying after a passing fault",
                            extra={"error": str(exc), "attempt": attempt, "wait": wait})
                if on_retry is not None:
                    on_retry(exc, wait)
                self.sleep(wait)
                attempt += 1
