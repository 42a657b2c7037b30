"""`make demo` timed in its pieces (issue 11: at most 12 minutes on 2 cores from a ready .venv, aim for 10;
a run's time outside its training at most 1.5 s), with the tables checked against the committed ones.

    .venv/bin/python benchmarks/demo.py                     # the demo sweeps into a new runs root, then the report
    .venv/bin/python benchmarks/demo.py --runs runs/demo    # only the figures of a demo already run there

Runs what `make demo` runs, from this .venv: `nlstudy sweep <the demo suite> --jobs 2` into --runs (when it
holds no finished sweep yet), then `nlstudy report` into a temporary folder, each timed as a whole command.
Prints:
- the sweep's and the report's wall time, and their sum (`make demo` from a ready .venv);
- the runs planned, trained and stood in for by a finished run of the same resolved configuration;
- per trained run: its time as the agent measured it (`duration_s`: start to exit), its training
  (`perf/wall_s`: fit and test, as the run measured it) and the difference, the time outside training
  (imports, wandb, data, teardown), as median, minimum and maximum;
- the sum of the trained runs' times over the cores: what the sweep cannot go below with this training;
- whether the report's tables (csv, md, tex) equal the committed results/demo/ byte for byte (exit 1 if not).
"""

from __future__ import annotations

import argparse
import filecmp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nlstudy import keys
from nlstudy.processes import cores
from nlstudy.records import all_records
from nlstudy.report.offline import read_offline

ROOT = Path(__file__).resolve().parents[1]
SUITE = sorted((ROOT / "sweeps" / "demo").glob("*.yaml"))  # the Makefile's DEMO_SWEEPS (the study is in study/)
COMMITTED = ROOT / "results" / "demo"
TABLE_SUFFIXES = (".csv", ".md", ".tex")


def timed(argv: list[str]) -> float:
    """Run a command from the repository root (its output passes through); its wall time. Exit on failure."""
    start = time.perf_counter()
    code = subprocess.call(argv, cwd=ROOT, env={**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"})
    if code != 0:
        sys.exit(f"{' '.join(argv[2:4])} ... exited with {code}")
    return time.perf_counter() - start


def per_run(runs_root: Path) -> tuple[list[dict], list[dict], list[tuple[float, float]]]:
    """The finished records (trained, stood in for) and, per trained run, (duration_s, perf/wall_s)."""
    records = [r for r in all_records(runs_root) if r["state"] == "finished"]
    trained = [r for r in records if not r.get("reused_from")]
    reused = [r for r in records if r.get("reused_from")]
    runs = read_offline(runs_root).runs.drop_duplicates("run_id").set_index("run_id")  # a stand-in: a copy of its run
    times = [(r["duration_s"], float(runs.loc[r.get("wandb_id") or r["id"], keys.WALL_S])) for r in trained]
    return trained, reused, times


def table_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix in TABLE_SUFFIXES and p.name != "README.md")


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, help="runs root (default: a new one under runs/)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, as make demo (default 2)")
    args = parser.parse_args(argv)
    runs_root = (args.runs or ROOT / "runs" / f"bench-demo-{time.strftime('%Y%m%d-%H%M%S')}").absolute()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; runs root {runs_root}", flush=True)
    ran_sweep = not any(r["state"] == "finished" for r in all_records(runs_root))
    sweep_s = None
    if ran_sweep:
        sweep_s = timed([sys.executable, "-m", "nlstudy", "sweep", *map(str, SUITE), "--jobs", str(args.jobs),
                         "--runs-root", str(runs_root)])
    with tempfile.TemporaryDirectory(prefix="nlstudy-bench-demo-") as out:
        report_s = timed([sys.executable, "-m", "nlstudy", "report", "--runs", str(runs_root), "--out", out,
                          "--no-cache"])
        names = table_files(COMMITTED)
        same = table_files(Path(out)) == names and all(
            filecmp.cmp(COMMITTED / n, Path(out) / n, shallow=False) for n in names)
    trained, reused, times = per_run(runs_root)
    durations = [d for d, _ in times]
    outside = [d - w for d, w in times]

    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    if sweep_s is not None:
        print(f"sweep (check and runs): {sweep_s:.1f} s = {sweep_s / 60:.1f} min")
    print(f"report: {report_s:.1f} s")
    if sweep_s is not None:
        total = sweep_s + report_s
        print(f"make demo from a ready .venv (sweep + report): {total:.1f} s = {int(total // 60)} min {total % 60:.0f} s"
              f" (target 12 min, aim 10: {'met' if total <= 720 else 'MISSED'})")
    print(f"runs: {len(trained) + len(reused)} finished as planned, {len(trained)} trained, {len(reused)} stood in "
          "for by a finished run of the same resolved configuration")
    print(f"a trained run: {spread(durations)} start to exit; training (fit + test) {spread([w for _, w in times])}")
    print(f"outside training: {spread(outside)} (target 1.5 s: "
          f"{'met' if statistics.median(outside) <= 1.5 else 'MISSED'} at the median)")
    floor = sum(durations) / min(args.jobs, cores())
    print(f"the trained runs' time over {min(args.jobs, cores())} cores: {floor:.0f} s = {floor / 60:.1f} min; "
          f"of it training: {sum(w for _, w in times) / min(args.jobs, cores()):.0f} s")
    print(f"tables ({len(names)} csv/md/tex files) byte-identical to results/demo/: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
