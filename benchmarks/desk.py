"""The desk's queue at 100,000 findings: how long each filter takes, on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/desk.py [--findings 100000] [--pg postgresql+psycopg://…/db]

Fills a fresh database (migrated to head) with synthetic findings spread over the eight
rules, 2,000 employers and a year of first-seen dates, a fifth of them assigned, then times
one queue page (50 rows + the total count) for each filter, best of 5, through the same
function the API and the pages call.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta

from reconciler.migrate import upgrade
from reconciler.storage import bulk_insert, create_db_engine, findings
from reconciler.web.queries import FindingFilter, queue
from reconciler.web.settings import DEFAULT_SLA_DAYS, WebSettings
from reconciler.web.tables import finding_reviews

FIRST = ["Muhammad", "Maria", "Suresh", "Ahmed", "Grace", "Imran", "Fatima", "Jose", "Ali"]
LAST = ["Khan", "Dela Cruz", "Nair", "Hassan", "Santos", "Rahman", "Uddin", "Perera"]
FILTERS: dict[str, dict[str, object]] = {
    "default (to do, by due date)": {},
    "rule": {"rule": "wage_underdeclared"},
    "severity + status": {"severity": "high", "status": "open"},
    "employer": {"employer_id": "7000000999"},
    "assignee": {"assignee": "olga"},
    "overdue": {"overdue": True},
    "due before": {"due_before": "2026-06-01"},
    "age ≥ 90 days": {"min_age_days": 90},
    "search by identifier": {"q": "2000012345"},
    "search by name": {"q": "rahman"},
    "all statuses": {"status": "all"},
}


def fill(url: str, n: int) -> None:
    engine = create_db_engine(url)
    upgrade(engine)
    rng = random.Random(5)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    rules = list(DEFAULT_SLA_DAYS)
    rows, reviews = [], []
    for i in range(n):
        fid = str(uuid.UUID(int=rng.getrandbits(128)))
        seen = now - timedelta(days=rng.randint(0, 365), seconds=rng.randint(0, 86_400))
        rows.append({
            "finding_id": fid, "fingerprint": uuid.uuid4().hex + uuid.uuid4().hex,
            "rule": rng.choice(rules), "rule_version": 1, "person_id": f"P{i:015d}",
            "employer_id": f"700000{rng.randint(0, 1999):04d}",
            "severity": rng.choice(("high", "medium", "low")),
            "status": rng.choices(("open", "in_review", "confirmed", "dismissed", "resolved"),
                                  (50, 10, 10, 10, 20))[0],
            "action": "review", "confidence": 0.999,
            "worker": {"contributor_id": f"K{i:09d}", "residence_id": f"2{i:09d}",
                       "name_en": f"{rng.choice(FIRST)} {rng.choice(LAST)}"},
            "evidence": [], "details": {}, "reasoning": "…", "content_hash": "0" * 64,
            "first_seen": seen, "last_seen": seen, "last_seen_as_of": date(2026, 11, 1),
            "resolved_at": None, "resolution": None,
        })
        if i % 5 == 0:
            reviews.append({"finding_id": fid, "assignee": rng.choice(("olga", "omar", "sam")),
                            "escalated": False})
    with engine.begin() as conn:
        for start in range(0, n, 20_000):
            bulk_insert(conn, findings, rows[start:start + 20_000])
        bulk_insert(conn, finding_reviews, reviews)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()


def measure(url: str) -> None:
    engine = create_db_engine(url)
    settings = WebSettings()
    now = datetime(2026, 11, 1, tzinfo=UTC)
    print(f"\n{engine.dialect.name}")
    print("| filter | matching | page (50 + total), best of 5 |")
    print("|---|---|---|")
    with engine.connect() as conn:
        for name, values in FILTERS.items():
            f = FindingFilter.model_validate(values)
            best = float("inf")
            for _ in range(5):
                t = time.perf_counter()
                total, _items = queue(conn, f, "olga", now, settings, 50, 0)
                best = min(best, time.perf_counter() - t)
            print(f"| {name} | {total:,} | {best * 1000:.0f} ms |")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--findings", type=int, default=100_000)
    parser.add_argument("--pg", default=None, help="an empty PostgreSQL database's URL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        urls = [f"sqlite:///{tmp}/desk.db"] + ([args.pg] if args.pg else [])
        for url in urls:
            t = time.perf_counter()
            fill(url, args.findings)
            print(f"filled {args.findings:,} findings in {time.perf_counter() - t:.1f}s")
            measure(url)


if __name__ == "__main__":
    main()
