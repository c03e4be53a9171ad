"""The file-drop connector: every ``*.csv`` in a feed's inbox folder is one delivery.

A file is identified by the SHA-256 of its bytes, so a file copied in twice, or renamed,
is read once; a file whose content changed is a new delivery. Files are taken in name
order, which for dated names (``contracts-2026-10.csv``) is delivery order.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from connectors.base import Delivery, RawRow

_CHUNK = 1 << 20


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def read_csv_rows(path: Path) -> Iterator[RawRow]:
    """Rows of a contract CSV with the line each starts on.

    UTF-8 with an optional BOM; bytes that are not UTF-8 survive as surrogates so the ingest
    stage can quarantine that row alone. A row with more cells than the header gets the
    surplus under the key ``None`` — the validator rejects it with that reason.
    """
    with path.open("r", encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        names = [h.strip() for h in header]
        width = len(names)
        start = reader.line_num + 1
        for cells in reader:
            line = start
            start = reader.line_num + 1
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            row: dict[str, str | None] = dict(zip(names, cells, strict=False))
            if len(cells) > width:
                row["__surplus__"] = ",".join(cells[width:])
            elif len(cells) < width:
                row["__missing__"] = str(width - len(cells))
            yield line, row


@dataclass
class FileDropConnector:
    name: str
    feed: str
    folder: Path
    pattern: str = "*.csv"

    def deliveries(self, already_seen: Callable[[str], bool]) -> Iterator[Delivery]:
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob(self.pattern)):
            if not path.is_file():
                continue
            content_hash = file_hash(path)
            if already_seen(content_hash):
                continue
            yield Delivery(source=str(path), content_hash=content_hash,
                           rows=read_csv_rows(path), reader=partial(read_csv_rows, path),
                           size=path.stat().st_size)

