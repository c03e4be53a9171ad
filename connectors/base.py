"""What every connector yields."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

RawRow = tuple[int, dict[str, str | None]]  # (line number in the source, column -> cell)


@dataclass(frozen=True)
class Delivery:
    """One unit of delivered data: a file, a page, a batch. ``content_hash`` identifies its
    content so the same delivery is never read twice; ``rows`` is consumed once."""

    source: str
    content_hash: str
    rows: Iterator[RawRow]


class Connector(Protocol):
    name: str
    feed: str

    def deliveries(self, already_seen: Callable[[str], bool]) -> Iterator[Delivery]:
        """Yield what is new; ``already_seen(content_hash)`` lets the connector skip work."""
        ...
