"""Partner connectors: declarations that yield deliveries of raw rows.

A connector knows how to *fetch*; it knows nothing of validation, identity or rules.
The ingest stage takes what it yields and decides what each row means.
"""

from __future__ import annotations

from connectors.base import Connector, Delivery, RawRow
from connectors.filedrop import FileDropConnector

__all__ = ["Connector", "Delivery", "FileDropConnector", "RawRow", "build_connector"]


def build_connector(settings: object, inbox: object) -> Connector:
    """The connector a declaration in ``config/`` describes (see ``ConnectorSettings``)."""
    from pathlib import Path

    from reconciler.config import ConnectorSettings

    assert isinstance(settings, ConnectorSettings)
    if settings.type == "filedrop":
        return FileDropConnector(
            name=settings.name, feed=settings.feed, folder=Path(str(inbox)) / settings.path,
            pattern=settings.pattern,
        )
    raise ValueError(f"unknown connector type {settings.type!r}")  # pragma: no cover
