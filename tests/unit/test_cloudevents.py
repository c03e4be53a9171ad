"""The outbox row → CloudEvents binary-mode mapping, and the producer's settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from reconciler.bus.cloudevents import from_headers, rfc3339, to_message
from reconciler.bus.relay import Backoff, producer_config
from reconciler.config import BusSettings
from reconciler.errors import FatalError

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "events"
ROW: dict[str, Any] = {"id": 7, "event_id": "0b7e2d0c-1c1f-4a52-9d3c-2f1f7c9f3a11",
       "type": "org.reconciler.finding.opened", "subject": "P0000042",
       "time": datetime(2026, 11, 1, 2, 0, tzinfo=UTC),
       "payload": {"finding_id": "5f0c7f5e-8a55-5f0e-9a7e-6f1d2c3b4a59",
                   "rule": "wage_underdeclared", "severity": "high", "status": "open",
                   "action": "review", "employer_id": "7000000025", "person_id": "P0000042",
                   "confidence": 0.998}}


def test_binary_mode_headers_key_and_json_data() -> None:
    message = to_message(ROW, "reconciler.events", "urn:reconciler")
    headers = dict(message.headers)
    assert headers == {
        "ce_specversion": b"1.0", "ce_id": ROW["event_id"].encode(),
        "ce_source": b"urn:reconciler", "ce_type": b"org.reconciler.finding.opened",
        "ce_subject": b"P0000042", "ce_time": b"2026-11-01T02:00:00Z",
        "ce_dataschema": b"https://reconciler.example/schemas/events/finding.opened.json",
        "content-type": b"application/json"}
    assert message.key == b"P0000042"  # keyed by person: one worker's events in order
    assert message.outbox_id == 7
    assert json.loads(message.value) == ROW["payload"]
    event = from_headers(message.headers, message.value)
    jsonschema_rs.validate(json.loads((SCHEMAS / "envelope.json").read_text()), event)
    jsonschema_rs.validate(json.loads((SCHEMAS / "finding.opened.json").read_text()),
                           event["data"])


def test_naive_times_are_utc_and_offsets_are_normalised() -> None:
    assert rfc3339(datetime(2026, 11, 1, 2, 0)) == "2026-11-01T02:00:00Z"
    moment = datetime.fromisoformat("2026-11-01T05:00:00+03:00")
    assert rfc3339(moment) == "2026-11-01T02:00:00Z"


def test_a_payload_with_a_name_breaks_its_schema() -> None:
    schema = json.loads((SCHEMAS / "finding.opened.json").read_text())
    with pytest.raises(jsonschema_rs.ValidationError):
        jsonschema_rs.validate(schema, {**ROW["payload"], "name_en": "Someone"})


def test_producer_is_idempotent_with_acks_all_and_passes_tls_and_sasl_through() -> None:
    plain = producer_config("127.0.0.1:9092, 127.0.0.1:9093", BusSettings(), {})
    assert plain["acks"] == "all" and plain["enable_idempotence"] is True
    assert plain["bootstrap_servers"] == ["127.0.0.1:9092", "127.0.0.1:9093"]
    assert "sasl_plain_password" not in plain
    bus = BusSettings(security_protocol="SASL_SSL", ssl_cafile=Path("/etc/ca.pem"),
                      sasl_mechanism="SCRAM-SHA-512", sasl_username="relay")
    config = producer_config("broker:9093", bus, {"RECONCILER_KAFKA_SASL_PASSWORD": "pw"})
    assert config["security_protocol"] == "SASL_SSL"
    assert config["ssl_cafile"] == "/etc/ca.pem"
    assert (config["sasl_mechanism"], config["sasl_plain_username"],
            config["sasl_plain_password"]) == ("SCRAM-SHA-512", "relay", "pw")
    with pytest.raises(FatalError, match="RECONCILER_KAFKA_SASL_PASSWORD"):
        producer_config("broker:9093", bus, {})


def test_sasl_without_a_mechanism_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="sasl_mechanism"):
        BusSettings(security_protocol="SASL_PLAINTEXT")


def test_backoff_doubles_up_to_its_ceiling_and_resets() -> None:
    backoff = Backoff(5, 60)
    assert [backoff.failure() for _ in range(5)] == [10, 20, 40, 60, 60]
    assert backoff.success() == 5
    assert backoff.failure() == 10
