"""Partner connectors: declarations that yield deliveries of raw rows.

A connector knows how to *fetch*; it knows nothing of validation, identity or rules.
The ingest stage takes what it yields and decides what each row means.
"""

from __future__ import annotations

from pathlib import Path

from connectors.base import Connector, Delivery, RawRow
from connectors.filedrop import FileDropConnector
from reconciler.config import ConnectorSettings

__all__ = ["Connector", "Delivery", "FileDropConnector", "RawRow", "build_connector"]


def build_connector(declared: ConnectorSettings, inbox: Path) -> Connector:
    """The connector a declaration in ``config/`` describes."""
    if declared.type == "filedrop":
        return FileDropConnector(name=declared.name, feed=declared.feed,
                                 folder=inbox / declared.path, pattern=declared.pattern)
    raise ValueError(f"unknown connector type {declared.type!r}")  # pragma: no cover
