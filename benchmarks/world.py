"""End-to-end benchmark on a generated world: `run --once` on the embedded default.

    .venv/bin/python benchmarks/world.py --workers 100000 [--seed 11]

Generates the world into benchmarks/out/, runs `reconciler run --once` in a child process
under /usr/bin/time (wall time, peak memory), scores the findings against the ground truth,
and prints a Markdown table row for benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from reconciler.evaluate import evaluate
from reconciler.synth.world import WorldSpec, generate_world, write_world

OUT = Path(__file__).resolve().parent / "out"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    root = OUT / f"world-{args.workers}-{args.seed}"
    shutil.rmtree(root, ignore_errors=True)
    inbox, truth, db = root / "inbox", root / "truth", root / "reconciler.db"
    started = time.perf_counter()
    write_world(generate_world(WorldSpec(workers=args.workers, seed=args.seed,
                                         as_of=date(2026, 11, 1))), inbox, truth)
    generated = time.perf_counter() - started
    env = {**os.environ, "RECONCILER_DATABASE_URL": f"sqlite:///{db}",
           "RECONCILER_INBOX": str(inbox), "RECONCILER_AS_OF": "2026-11-01"}
    reconciler = str(Path(sys.executable).with_name("reconciler"))
    run = subprocess.run(["/usr/bin/time", "-v", reconciler, "run", "--once"], env=env,
                         capture_output=True, text=True, check=True)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (.+)", run.stderr)
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr)
    report = json.loads(run.stdout)
    export = subprocess.run([reconciler, "findings", "export"], env=env, capture_output=True,
                            text=True, check=True).stdout
    result = evaluate([json.loads(line) for line in export.splitlines()], truth)
    print(result.format_table())
    print(json.dumps({stage: {"seconds": seconds, "peak_mib": report["peak_mib"].get(stage)}
                      for stage, seconds in report["timings"].items()}, indent=1))
    per_rule = " ".join(f"{r.split('_')[0][:5]} {s.f1:.3f}" for r, s in result.rules.items())
    print(f"| {platform.machine()}, {os.cpu_count()} cores | {args.workers:,} workers "
          f"({report['identity']['records']:,} records) | generate {generated:.0f} s; "
          f"run {wall.group(1) if wall else '?'} | {int(peak.group(1)) / 1e6 if peak else 0:.2f}"
          f" GB | macro F1 {result.macro_f1:.4f}; auto-registration precision "
          f"{result.auto_register_precision:.4f} ({result.auto_register_count}); {per_rule} |")


if __name__ == "__main__":
    main()
