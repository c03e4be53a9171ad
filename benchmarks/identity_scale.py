"""The resolve stage alone at national scale: a full resolution, stage by stage.

    .venv/bin/python benchmarks/identity_scale.py --workers 1000000 [--seed 17]

Reads the identity records of a generated world as ``benchmarks/incremental.py`` stages
and caches them, resolves them in full (``IdentityResolver.resolve``: what ``run --once``
does between loading and checking), and prints the CPU seconds of each step — signatures
and identifier clusters, name tokens, candidate pairs, grading, scoring, merging, naming —
with the resident memory above the loaded records frame at its peak.
"""

from __future__ import annotations

import argparse
import gc
import resource
import time

from incremental import identity_records

from reconciler.identity.resolve import IdentityResolver
from reconciler.identity.signatures import gc_paused


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    records = identity_records(args.workers, args.seed)
    gc.collect()
    loaded = peak_mb()
    resolver = IdentityResolver()
    steps: dict[str, float] = {}
    clock = [time.process_time()]

    def step(name: str) -> None:
        now = time.process_time()
        steps[name] = now - clock[0]
        clock[0] = now

    started = time.perf_counter()
    with gc_paused():
        prep = resolver.prepare(records)
        step("signatures and identifier clusters")
        f = prep.features
        f["name_code"]
        step("name tokens")
        i, j = resolver.candidate_pairs(prep)
        candidates = len(i)
        step("candidate pairs")
        kept, levels = resolver.grade_bounded(f, i, j)
        step("grading")
        i, j = i[kept], j[kept]
        score, tf = resolver.scores(f, i, j, levels)
        step("scores")
        merged = resolver.merge(f, i, j, levels, score, tf, prep.labels)
        step("merging")
        resolution, _ = resolver.persons(prep.refs, merged.root[prep.sig_codes], None, merged,
                                         prep.first_ref)
        step("naming the persons")
    wall = time.perf_counter() - started
    print(f"{len(records):,} records, {prep.sigs.n:,} signatures, {candidates:,} "
          f"candidate pairs ({len(kept):,} graded in full), {len(resolution.persons):,} "
          f"persons")
    for name, seconds in steps.items():
        print(f"  {name:36s} {seconds:6.1f} s CPU")
    print(f"  {'total':36s} {sum(steps.values()):6.1f} s CPU, {wall:.1f} s wall; "
          f"peak {peak_mb() - loaded:,.0f} MB above the loaded records ({loaded:,.0f} MB)")


if __name__ == "__main__":
    main()
