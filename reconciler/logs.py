"""Structured logs with identifiers masked.

Every record is one JSON object a line. Anything that looks like a person identifier —
a 10-digit number, a passport-like token — is masked (``23******10``) in the message and in
every extra field, so a log shipped to a shared system carries no usable identifier.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_ID = re.compile(r"(?<![0-9A-Za-z])[0-9A-Za-z]{7,}(?![0-9A-Za-z])")
_LOOKS_LIKE_ID = re.compile(r"^(?=.*\d)[0-9A-Z]{7,20}$")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def mask(text: str) -> str:
    """Mask every token of 7–20 upper-case letters/digits that contains a digit."""

    def repl(m: re.Match[str]) -> str:
        token = m.group(0)
        if not _LOOKS_LIKE_ID.match(token):
            return token
        return token[:2] + "*" * (len(token) - 4) + token[-2:]

    return _ID.sub(repl, text)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": mask(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = _masked(value)
        if record.exc_info:
            out["error"] = mask(self.formatException(record.exc_info))
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("kafka", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
