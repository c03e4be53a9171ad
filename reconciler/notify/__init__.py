"""Employer notifications: a digest per employer per run, by email and signed webhook
(see ``docs/notifications.md``)."""

from __future__ import annotations

from reconciler.notify.notifier import (
    DeliveryReport,
    NotificationCollector,
    Notifier,
    notification_counts,
    retry_dead,
)

__all__ = ["DeliveryReport", "NotificationCollector", "Notifier", "notification_counts",
           "retry_dead"]
