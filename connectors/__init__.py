"""Partner connectors: declarations that yield deliveries of raw rows.

A connector knows how to *fetch*; it knows nothing of validation, identity or rules.
The ingest stage takes what it yields and decides what each row means.
"""

from __future__ import annotations

from pathlib import Path

from connectors.base import Connector, Delivery, IncrementalConnector, RawRow
from connectors.filedrop import FileDropConnector
from connectors.rest import RestConnector, build_rest
from connectors.sql import SqlConnector, build_sql
from reconciler.config import ConnectorSettings

__all__ = ["Connector", "Delivery", "FileDropConnector", "IncrementalConnector", "RawRow",
           "RestConnector", "SqlConnector", "build_connector"]


def build_connector(declared: ConnectorSettings, inbox: Path) -> Connector:
    """The connector a declaration in ``config/`` describes."""
    if declared.type == "filedrop":
        assert declared.path is not None  # the declaration's validator requires it
        return FileDropConnector(name=declared.name, feed=declared.feed,
                                 folder=inbox / declared.path, pattern=declared.pattern)
    if declared.type == "rest":
        return build_rest(declared)
    if declared.type == "sql":
        return build_sql(declared)
    raise ValueError(f"unknown connector type {declared.type!r}")  # pragma: no cover
