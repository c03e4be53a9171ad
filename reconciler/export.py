"""The findings export (contract: *Findings export*): JSON lines or CSV."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import Connection, select

from reconciler.storage import findings

EXPORT_FIELDS = ["finding_id", "rule", "severity", "status", "action", "worker", "employer_id",
                 "confidence", "evidence", "details", "first_seen", "last_seen"]


def _stamp(value: datetime) -> str:
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def iter_findings(conn: Connection, status: str | None = None,
                  rule: str | None = None) -> Iterator[dict[str, Any]]:
    query = select(findings).order_by(findings.c.rule, findings.c.employer_id,
                                      findings.c.finding_id)
    if status:
        query = query.where(findings.c.status == status)
    if rule:
        query = query.where(findings.c.rule == rule)
    for row in conn.execute(query).mappings():
        out = {k: row[k] for k in EXPORT_FIELDS}
        out["first_seen"] = _stamp(row["first_seen"])
        out["last_seen"] = _stamp(row["last_seen"])
        out["reasoning"] = row["reasoning"]
        yield out


def write_jsonl(rows: Iterator[dict[str, Any]], out: IO[str]) -> int:
    n = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        n += 1
    return n


CSV_COLUMNS = ["finding_id", "rule", "severity", "status", "action", "employer_id",
               "confidence", "contributor_id", "contributor_ids", "national_id",
               "residence_id", "border_number", "passport_number", "name_en", "evidence",
               "details", "first_seen", "last_seen"]


def write_csv(rows: Iterator[dict[str, Any]], out: IO[str]) -> int:
    """Flat: the worker's fields as columns, lists joined by ``;``, evidence as
    ``feed:key;…``, details as JSON."""
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    n = 0
    for row in rows:
        worker = row["worker"]
        writer.writerow({
            **{k: row[k] for k in ("finding_id", "rule", "severity", "status", "action",
                                   "employer_id", "confidence", "first_seen", "last_seen")},
            **{k: worker.get(k) for k in ("contributor_id", "national_id", "residence_id",
                                          "border_number", "passport_number", "name_en")},
            "contributor_ids": ";".join(worker.get("contributor_ids") or []),
            "evidence": ";".join(f"{e['feed']}:{e['key']}" for e in row["evidence"]),
            "details": json.dumps(row["details"], ensure_ascii=False, sort_keys=True),
        })
        n += 1
    return n
