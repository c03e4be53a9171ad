"""Structured logs: one JSON object a line, identifiers masked everywhere."""

from __future__ import annotations

import json
import logging
import sys

from reconciler.logs import JsonFormatter


def record(msg: str, **extra: object) -> logging.LogRecord:
    rec = logging.makeLogRecord({"name": "reconciler.test", "levelname": "INFO",
                                 "levelno": logging.INFO, "msg": msg, "args": ()})
    rec.__dict__.update(extra)
    return rec


def test_identifiers_are_masked_in_message_extras_and_tracebacks() -> None:
    rec = record("delivery staged for 2735590867",
                 worker={"residence_id": "2735590867", "passport_number": "P4410932",
                         "name": "Maria"}, rows=4)
    try:
        raise ValueError("bad passport P4410932")
    except ValueError:
        rec.exc_info = sys.exc_info()
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    out = json.loads(line)
    assert out["message"] == "delivery staged for 27******67"
    assert out["worker"] == {"residence_id": "27******67", "passport_number": "P4****32",
                             "name": "Maria"}
    assert out["rows"] == 4 and out["level"] == "INFO" and out["logger"] == "reconciler.test"
    assert "P4410932" not in out["error"] and "P4****32" in out["error"]
    assert "2735590867" not in line and "P4410932" not in line
