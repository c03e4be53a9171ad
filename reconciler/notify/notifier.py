"""The notifier: plan each run's digests, deliver what is due, retry with backoff,
dead-letter what keeps failing.

A delivery is claimed (its ``next_attempt_at`` pushed past the send timeout by a
conditional update) before it is attempted, so two replicas never send the same one at
once. Success marks it ``sent`` and writes the ``employer.notified`` event to the outbox in
the same transaction. A retriable failure schedules the next attempt after
``backoff_seconds · 2^(attempts-1)`` (capped); after ``max_attempts`` failures — or at once
on a permanent refusal — it is ``dead`` and shows in ``reconciler notifications list
--status dead`` and in the metric ``reconciler_notifications{status="dead"}``.

Delivery is at-least-once: a crash between the send and the mark sends the digest again
(same Message-ID / ``X-Reconciler-Delivery``), so receivers can recognise it.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, func, insert, select, update

from reconciler.config import NotifySettings
from reconciler.errors import FatalError, RetriableError
from reconciler.notify.channels import build_email, post_webhook, send_email
from reconciler.notify.digest import plan_digests
from reconciler.notify.render import environment, render_digest
from reconciler.notify.tables import notifications
from reconciler.storage import outbox

log = logging.getLogger(__name__)

EVENT_TYPE = "org.reconciler.employer.notified"
STATUSES = ("pending", "sent", "dead")


@dataclass
class DeliveryReport:
    planned: int = 0
    sent: int = 0
    retrying: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"planned": self.planned, "sent": self.sent, "retrying": self.retrying,
                "dead": self.dead}


class Notifier:
    """Employer digests by email and webhook. ``clock`` is injectable so tests can walk
    through backoff without sleeping."""

    def __init__(self, engine: Engine, settings: NotifySettings,
                 env: Mapping[str, str] | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.settings = settings
        env = os.environ if env is None else env
        self.webhook_secret = env.get(settings.webhook_secret_env) or None
        self.clock = clock or (lambda: datetime.now(UTC))
        self.templates = environment()

    @property
    def channels(self) -> set[str]:
        out = set()
        if self.settings.smtp_url:
            out.add("email")
        if self.webhook_secret:
            out.add("webhook")
        return out

    @property
    def enabled(self) -> bool:
        return bool(self.channels)

    def run(self, as_of: date) -> DeliveryReport:
        """After a reconcile: plan what is new, then deliver everything due."""
        report = DeliveryReport()
        if not self.enabled:
            return report
        with self.engine.begin() as conn:
            report.planned = len(plan_digests(conn, self.settings, as_of, self.clock(),
                                              self.channels))
        self.deliver_due(report)
        return report

    def deliver_due(self, report: DeliveryReport | None = None) -> DeliveryReport:
        report = report or DeliveryReport()
        now = self.clock()
        with self.engine.connect() as conn:
            due = conn.execute(select(notifications.c.notification_id)
                               .where(notifications.c.status == "pending",
                                      notifications.c.next_attempt_at <= now)
                               .order_by(notifications.c.created_at,
                                         notifications.c.notification_id)).scalars().all()
        for notification_id in due:
            self._deliver(notification_id, report)
        return report

    # -- one delivery ---------------------------------------------------------------------

    def _claim(self, notification_id: str) -> dict[str, Any] | None:
        now = self.clock()
        hold = now + timedelta(seconds=self.settings.timeout_seconds * 3)
        with self.engine.begin() as conn:
            claimed = conn.execute(
                update(notifications).where(notifications.c.notification_id == notification_id,
                                            notifications.c.status == "pending",
                                            notifications.c.next_attempt_at <= now)
                .values(next_attempt_at=hold)).rowcount
            if claimed != 1:
                return None
            row = conn.execute(select(notifications).where(
                notifications.c.notification_id == notification_id)).mappings().one()
        return dict(row)

    def _send(self, row: Mapping[str, Any]) -> None:
        digest = row["digest"]
        if row["channel"] == "email":
            if not self.settings.smtp_url:
                raise RetriableError("email is switched off (RECONCILER_SMTP_URL unset)")
            rendered = render_digest(digest, row["language"], self.templates)
            message = build_email(self.settings.sender, row["recipient"],
                                  row["notification_id"], rendered, row["language"])
            send_email(self.settings.smtp_url, message, self.settings.timeout_seconds)
        elif row["channel"] == "webhook":
            if not self.webhook_secret:
                raise RetriableError(f"webhooks are switched off "
                                     f"({self.settings.webhook_secret_env} unset)")
            post_webhook(row["recipient"], self.webhook_secret, row["notification_id"],
                         digest, self.settings.timeout_seconds)
        else:
            raise FatalError(f"unknown notification channel {row['channel']!r}")

    def _deliver(self, notification_id: str, report: DeliveryReport) -> None:
        row = self._claim(notification_id)
        if row is None:
            return
        attempts = int(row["attempts"]) + 1
        try:
            self._send(row)
        except RetriableError as exc:
            self._failed(row, attempts, str(exc), permanent=False, report=report)
        except FatalError as exc:
            self._failed(row, attempts, str(exc), permanent=True, report=report)
        else:
            self._sent(row, attempts)
            report.sent += 1

    def _sent(self, row: Mapping[str, Any], attempts: int) -> None:
        now = self.clock()
        digest = row["digest"]
        with self.engine.begin() as conn:
            conn.execute(update(notifications)
                         .where(notifications.c.notification_id == row["notification_id"])
                         .values(status="sent", sent_at=now, attempts=attempts,
                                 last_error=None))
            conn.execute(insert(outbox).values(
                event_id=str(uuid.uuid4()), type=EVENT_TYPE, subject=row["employer_id"],
                time=now, attempts=0, payload={
                    "notification_id": row["notification_id"],
                    "digest_id": row["digest_id"], "employer_id": row["employer_id"],
                    "channel": row["channel"], "language": row["language"],
                    "attempts": attempts,
                    "registered": [i["finding_id"] for i in digest["registered"]],
                    "corrections": [i["finding_id"] for i in digest["corrections"]],
                    "decisions": [i["finding_id"] for i in digest.get("decisions", [])],
                    "respond_by": digest["respond_by"]}))
        log.info("employer notified", extra={"employer_id": row["employer_id"],
                                             "channel": row["channel"], "attempts": attempts})

    def _failed(self, row: Mapping[str, Any], attempts: int, error: str, permanent: bool,
                report: DeliveryReport) -> None:
        now = self.clock()
        dead = permanent or attempts >= self.settings.max_attempts
        delay = min(self.settings.max_backoff_seconds,
                    self.settings.backoff_seconds * 2 ** (attempts - 1))
        with self.engine.begin() as conn:
            conn.execute(update(notifications)
                         .where(notifications.c.notification_id == row["notification_id"])
                         .values(status="dead" if dead else "pending", attempts=attempts,
                                 last_error=error[:2000],
                                 next_attempt_at=now if dead else now + timedelta(
                                     seconds=delay)))
        report.errors.append(error)
        if dead:
            report.dead += 1
            log.error("notification dead-lettered", extra={
                "employer_id": row["employer_id"], "channel": row["channel"],
                "attempts": attempts, "error": error})
        else:
            report.retrying += 1
            log.warning("notification failed; retrying later", extra={
                "employer_id": row["employer_id"], "channel": row["channel"],
                "attempts": attempts, "retry_in_seconds": delay, "error": error})


def retry_dead(conn: Connection, notification_id: str, now: datetime) -> bool:
    """An operator's second chance for a dead letter: back to pending, attempts reset."""
    return conn.execute(update(notifications)
                        .where(notifications.c.notification_id == notification_id,
                               notifications.c.status == "dead")
                        .values(status="pending", attempts=0, next_attempt_at=now)
                        ).rowcount == 1


def notification_counts(conn: Connection) -> dict[tuple[str, str], int]:
    rows = conn.execute(select(notifications.c.channel, notifications.c.status, func.count())
                        .group_by(notifications.c.channel, notifications.c.status)).all()
    return {(str(c), str(s)): int(n) for c, s, n in rows}


class NotificationCollector(Collector):
    """Prometheus: ``reconciler_notifications{channel,status}`` read from the database at
    scrape time (register it on the daemon's registry)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("reconciler_notifications",
                                   "Employer notifications by channel and delivery status",
                                   labels=["channel", "status"])
        with self.engine.connect() as conn:
            counts = notification_counts(conn)
        for channel in ("email", "webhook"):
            for status in STATUSES:
                family.add_metric([channel, status], counts.get((channel, status), 0))
        yield family
