"""Incremental identity resolution: a delivery of changed records against a person index.

    .venv/bin/python benchmarks/incremental.py --workers 1000000 [--seed 17] [--changes 1000]
                                               [--check]

What it measures. A generated world (``reconciler/synth/world.py``) is staged once, the way
the daemon stages it (every connector pulled into the embedded SQLite database), and its
identity records are read as the pipeline reads them; they are cached in
``benchmarks/out/incremental-<workers>-<seed>/records.pkl`` so a second run starts here.
Three deliveries of ``--changes`` partner records each (contracts, permits, payroll lines,
drawn at random) are held out; ``PersonIndex`` is built on everything else (a full
resolution, kept: timed, not the point), and then the three deliveries are applied one
after the other, each timed on its own: ``PersonIndex.apply`` — encode the delivery, move
its records to their signatures, re-pair and re-score what that changes, merge and name
the touched persons again. The figure is the median of the three (wall and CPU seconds).
Peak memory is the process's peak resident set, the records frame included.

``--check`` then resolves the final records in full and compares: every person (its
records, links, doubts and confidence) must be the same.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from reconciler.identity.index import PersonIndex
from reconciler.identity.resolve import IdentityResolver, Resolution
from reconciler.synth.world import WorldSpec, generate_world, write_world

OUT = Path(__file__).resolve().parent / "out"


def identity_records(workers: int, seed: int) -> pd.DataFrame:
    """The world's identity records as the pipeline reads them (staged once, cached)."""
    root = OUT / f"incremental-{workers}-{seed}"
    cached = root / "records.pkl"
    if cached.exists():
        return pd.read_pickle(cached)
    root.mkdir(parents=True, exist_ok=True)
    inbox, truth, db = root / "inbox", root / "truth", root / "reconciler.db"
    db.unlink(missing_ok=True)
    started = time.perf_counter()
    write_world(generate_world(WorldSpec(workers=workers, seed=seed, as_of=date(2026, 11, 1))),
                inbox, truth)
    os.environ.update({"RECONCILER_DATABASE_URL": f"sqlite:///{db}",
                       "RECONCILER_INBOX": str(inbox), "RECONCILER_AS_OF": "2026-11-01"})
    from reconciler.config import load_settings
    from reconciler.pipeline import (
        PARTNER_COLUMNS,
        Reconciler,
        _identity_records,
        _partner_frame,
    )

    app = Reconciler.from_settings(load_settings())
    app.pull()
    with app.engine.connect() as conn:
        partner = {f: _partner_frame(conn, f, c) for f, c in PARTNER_COLUMNS.items()}
        records = _identity_records(partner, app.registry.contributors(conn),
                                    app.registry.engagements(conn))
    app.engine.dispose()
    records.to_pickle(cached)
    print(f"staged {len(records):,} records in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    return records


def persons(resolution: Resolution) -> dict[frozenset[str], tuple[object, ...]]:
    out: dict[frozenset[str], tuple[object, ...]] = {}
    for pid in resolution.persons:
        p = resolution.persons[pid]
        out[frozenset(p.refs)] = (
            round(p.confidence, 12),
            sorted((lk.ref_a, lk.ref_b, round(lk.probability, 12), tuple(lk.weights.items()))
                   for lk in p.links),
            sorted((lk.ref_a, lk.ref_b, round(lk.probability, 12), tuple(lk.weights.items()))
                   for lk in p.doubts))
    return out


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--changes", type=int, default=1_000)
    parser.add_argument("--check", action="store_true",
                        help="compare the index with a full resolution afterwards")
    args = parser.parse_args()
    records = identity_records(args.workers, args.seed).reset_index(drop=True)
    rng = np.random.default_rng(args.seed)
    partner = np.flatnonzero(records["feed"].to_numpy() != "contributors")
    held = rng.choice(partner, size=3 * args.changes, replace=False)
    deliveries = [records.loc[held[k * args.changes:(k + 1) * args.changes]] for k in range(3)]
    base = records.drop(index=held)
    loaded = peak_mb()

    index = PersonIndex(IdentityResolver())
    started, cpu = time.perf_counter(), time.process_time()
    index.apply(base)
    build = (time.perf_counter() - started, time.process_time() - cpu)
    built = peak_mb()
    print(f"index of {len(index.members):,} persons, {len(base):,} records built in "
          f"{build[0]:.0f} s (CPU {build[1]:.0f} s); peak {built:,.0f} MB "
          f"(records loaded: {loaded:,.0f} MB)", file=sys.stderr)

    walls, cpus, touched = [], [], []
    for delivery in deliveries:
        started, cpu = time.perf_counter(), time.process_time()
        resolution = index.apply(delivery)
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
        touched.append(resolution.stats["records"])
        print(f"  {len(delivery):,} changed records: {walls[-1]:.3f} s (CPU {cpus[-1]:.3f} s), "
              f"re-resolved {resolution.stats['records']:,} records", file=sys.stderr)
    gc.collect()

    equal = "not checked"
    if args.check:
        full = IdentityResolver().resolve(records)
        equal = "equal to a full run" if persons(index.resolution({})) == persons(full) \
            else "DIFFERENT from a full run"
        print(equal, file=sys.stderr)
    median_wall = statistics.median(walls)
    print(f"| {date.today()} | {platform.machine()}, {os.cpu_count()} cores "
          f"| {args.changes:,} changed records against {len(index.members):,} persons "
          f"({len(base):,} records; {args.workers:,} workers, seed {args.seed}) "
          f"| {median_wall:.2f} s median of 3 ({', '.join(f'{w:.2f}' for w in walls)}; "
          f"CPU {statistics.median(cpus):.2f} s), re-resolving "
          f"{int(statistics.median(touched)):,} records; build {build[0]:.0f} s "
          f"| {peak_mb() / 1024:.2f} GB | {equal} |")


if __name__ == "__main__":
    main()
