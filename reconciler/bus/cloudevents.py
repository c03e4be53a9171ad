"""An outbox row as a CloudEvents 1.0 Kafka message in *binary* content mode.

Binary mode: the event's attributes travel as ``ce_*`` headers, the data is the message
value (JSON), and ``content-type`` names the data's media type. The key is the event's
subject — the person id (the employer id for ``employer.*`` events) — so every event of
one worker lands on one partition, in the order the outbox holds them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
SCHEMA_BASE = "https://reconciler.example/schemas/events/"


@dataclass(frozen=True)
class EventMessage:
    """One Kafka record: everything the producer needs, nothing else."""

    outbox_id: int
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def rfc3339(moment: datetime) -> str:
    """UTC with a ``Z``; a naive time (SQLite hands those back) is UTC by construction."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def schema_name(event_type: str) -> str:
    """``org.reconciler.finding.opened`` → ``finding.opened.json``."""
    return event_type.removeprefix("org.reconciler.") + ".json"


def to_message(row: Mapping[Any, Any], topic: str, source: str) -> EventMessage:
    """Map an ``outbox`` row to its Kafka record."""
    attributes = {
        "ce_specversion": SPEC_VERSION,
        "ce_id": str(row["event_id"]),
        "ce_source": source,
        "ce_type": str(row["type"]),
        "ce_subject": str(row["subject"]),
        "ce_time": rfc3339(row["time"]),
        "ce_dataschema": SCHEMA_BASE + schema_name(str(row["type"])),
        "content-type": CONTENT_TYPE,
    }
    payload = row["payload"]
    if isinstance(payload, str):  # a JSON column read back raw by a driver
        payload = json.loads(payload)
    value = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return EventMessage(
        outbox_id=int(row["id"]), topic=topic, key=str(row["subject"]).encode(),
        value=value.encode(), headers=[(k, v.encode()) for k, v in attributes.items()])


def from_headers(headers: list[tuple[str, bytes]], value: bytes) -> dict[str, Any]:
    """The structured form of a binary-mode record (what a consumer reconstructs)."""
    event: dict[str, Any] = {}
    for name, raw in headers:
        if name.startswith("ce_"):
            event[name.removeprefix("ce_")] = raw.decode()
        elif name == "content-type":
            event["datacontenttype"] = raw.decode()
    event["data"] = json.loads(value)
    return event
