"""The bus: the outbox relayed to Kafka as CloudEvents (see ``docs/events.md``)."""

from __future__ import annotations

from reconciler.bus.cloudevents import EventMessage, to_message
from reconciler.bus.relay import OutboxRelay, OutboxStatus, RelayResult, outbox_status

__all__ = ["EventMessage", "OutboxRelay", "OutboxStatus", "RelayResult", "outbox_status",
           "to_message"]
