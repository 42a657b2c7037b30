"""Time `nlstudy report` over many offline runs (issue 11: 500 runs in under 30 s), cold (empty cache)
and warm (cache filled by the cold report), beside the reader before issue 11 (``python -m wandb leet
inspect`` per run) on a subset, and check that the numbers did not change.

The runs: N (default 500) clones of the finished runs of a source runs root (default runs/demo, which
`make demo` makes): real offline wandb runs with new ids, written in-process with the wandb SDK (each
source run's config, logged rows and summary replayed; no training; about 0.2 s a run, two writer
processes), with the source's sweep files. They stay in --runs and are reused while N and the source match.

    .venv/bin/python benchmarks/report.py                       # 500 runs (writing them: ~2 min once)
    .venv/bin/python benchmarks/report.py --n 100 --subset 20   # quicker

Prints the wall time of the whole `nlstudy report` command (a fresh process, as a user runs it) cold and
warm, the time of the reading alone (in this process), the old reader's time per run on the subset and
what it makes for N runs, and the speed-ups. Checks (exit code 1 when one fails): the cold and warm
reports' tables (csv, md, tex) are byte-identical; on the subset, the old reader's runs and history
frames and every table built from them equal the new reader's.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import functools
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import pandas as pd

from nlstudy.records import find_sweep_files
from nlstudy.report import offline, resumed, schema, specs, sweeps, tables, wandb_log
from nlstudy.report.logcache import LogCache

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 30.0


# --------------------------------------------------------------------------------------------------
# the runs
# --------------------------------------------------------------------------------------------------


def source_runs(source: Path) -> list[schema.RunRecord]:
    """The finished runs of `source`, one record per run id, in run-id order."""
    records = [offline.read_offline_run(f) for f in offline.find_run_files(source)]
    return sorted((r for r in resumed.merge_resumed(records) if r.state == "finished"), key=lambda r: r.run_id)


def write_clones(jobs: list[tuple[str, dict]], dest: str) -> int:
    """Write one offline run per (new id, source record as a dict) under `dest`, in this process."""
    os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true")
    import wandb

    for run_id, rec in jobs:
        settings = wandb.Settings(sweep_id=rec["sweep_id"], console="off", x_disable_stats=True,
                                  x_disable_meta=True, x_disable_machine_info=True)
        run = wandb.init(mode="offline", dir=dest, project=rec["project"] or "bench", id=run_id, name=rec["name"],
                         config=rec["config"], settings=settings)
        for row in rec["history"]:
            run.log({k: v for k, v in row.items() if not k.startswith("_")})
        for key, value in rec["summary"].items():
            run.summary[key] = value
        run.finish()
    return len(jobs)


def make_runs(source: Path, dest: Path, n: int, writers: int) -> int:
    """N clones of `source`'s finished runs under `dest` (kept and reused); returns the number of sources."""
    stamp = dest / "bench.json"
    wanted = {"n": n, "source": str(source.resolve())}
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return json.loads((dest / "sources.json").read_text())
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    sources = source_runs(source)
    if not sources:
        raise SystemExit(f"no finished runs under {source}")
    print(f"writing {n} runs into {dest} (clones of the {len(sources)} finished runs of {source}) ...", flush=True)
    jobs = [(f"bench{i:05d}", dataclasses.asdict(sources[i % len(sources)])) for i in range(n)]
    start = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(writers, mp_context=ctx) as pool:
        written = sum(pool.map(write_clones, [jobs[i::writers] for i in range(writers)], [str(dest)] * writers))
    assert written == n
    for sweep_file in find_sweep_files(source):
        shutil.copytree(sweep_file.parent, dest / "sweeps" / sweep_file.parent.name)
    print(f"  written in {time.perf_counter() - start:.0f} s", flush=True)
    (dest / "sources.json").write_text(json.dumps(len(sources)))
    stamp.write_text(json.dumps(wanted))
    return len(sources)


# --------------------------------------------------------------------------------------------------
# timing and checks
# --------------------------------------------------------------------------------------------------


def report_cli(runs: Path, out: Path, cache: Path) -> float:
    """Wall seconds of one `nlstudy report` in a fresh process."""
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nlstudy", "report", "--runs", str(runs), "--out", str(out),
                    "--cache-dir", str(cache)], check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def same_tables(a: Path, b: Path) -> bool:
    """Every csv, md and tex of two reports byte-identical (the README names its --out, so not compared)."""
    names = sorted(p.name for p in a.iterdir() if p.suffix in (".csv", ".md", ".tex") and p.name != "README.md")
    return bool(names) and names == sorted(p.name for p in b.iterdir() if p.suffix in (".csv", ".md", ".tex")
                                           and p.name != "README.md") \
        and all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def same_collections(old: schema.Collection, new: schema.Collection, expected: pd.DataFrame) -> bool:
    """Equal runs and history frames, and equal tables built from them."""
    try:
        pd.testing.assert_frame_equal(old.runs, new.runs)
        pd.testing.assert_frame_equal(old.history, new.history)
        for table_id in specs.table_ids(new.runs, expected):
            pd.testing.assert_frame_equal(tables.build_table(old.runs, table_id, expected=expected),
                                          tables.build_table(new.runs, table_id, expected=expected))
    except AssertionError as err:
        print(f"  differs: {str(err)[:300]}")
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=500, help="runs to report over (default 500)")
    p.add_argument("--source", type=Path, default=ROOT / "runs" / "demo",
                   help="runs root whose finished runs are cloned (default runs/demo: `make demo`)")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench-report",
                   help="where the clones are written and kept (default runs/bench-report)")
    p.add_argument("--subset", type=int, default=50, help="runs the old reader reads (default 50)")
    p.add_argument("--writers", type=int, default=2, help="processes writing the clones (default 2)")
    args = p.parse_args(argv)
    if not args.source.is_dir() or not offline.find_run_files(args.source):
        print(f"--source: no runs under {args.source} (run `make demo` first, or pass a runs root)", file=sys.stderr)
        return 2
    n_sources = make_runs(args.source, args.runs, args.n, args.writers)

    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        tmp = Path(tmp)
        cache_dir = tmp / "cache"
        cold_s = report_cli(args.runs, tmp / "cold", cache_dir)
        warm_s = report_cli(args.runs, tmp / "warm", cache_dir)
        identical = same_tables(tmp / "cold", tmp / "warm")

        # the reading alone, in this process (wandb imported by the first read, outside the timings)
        _, _ = timed(offline.read_runs, [offline.find_run_files(args.runs)[0].parent])
        _, read_cold_s = timed(offline.read_offline, args.runs, cache=LogCache(tmp / "cache2"))
        _, read_warm_s = timed(offline.read_offline, args.runs, cache=LogCache(tmp / "cache2"))

        subset = [f.parent for f in offline.find_run_files(args.runs)[: args.subset]]
        expected = sweeps.planned(find_sweep_files(args.runs))
        new, new_s = timed(offline.read_runs, subset)
        old_reader = functools.partial(wandb_log.inspect_records, via_cli=True)
        with mock.patch.object(wandb_log, "inspect_records", old_reader):
            old, old_s = timed(offline.read_runs, subset)
        equal = same_collections(old, new, expected)

    n = args.n
    old_read_n = old_s / len(subset) * n
    old_report_n = old_read_n + (warm_s - read_warm_s)  # the old reader plus the rest of a report
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{n} runs (clones of {n_sources} runs of {args.source}), {os.cpu_count()} CPUs, load average {load}\n")
    print(f"{'':34} {'nlstudy report':>16} {'reading only':>14}")
    print(f"{'cold (empty cache)':34} {cold_s:>14.1f} s {read_cold_s:>12.1f} s")
    print(f"{'warm (cache from the cold report)':34} {warm_s:>14.1f} s {read_warm_s:>12.1f} s")
    print(f"{'before issue 11 (extrapolated)':34} {old_report_n:>14.1f} s {old_read_n:>12.1f} s"
          f"   <- python -m wandb leet inspect: {old_s / len(subset) * 1000:.0f} ms a run over {len(subset)} runs")
    print(f"\nreading, new reader on the same {len(subset)} runs: {new_s / len(subset) * 1000:.0f} ms a run "
          f"(x{old_s / new_s:.1f} faster without the cache)")
    print(f"speed-up of the report: cold x{old_report_n / cold_s:.1f}, warm x{old_report_n / warm_s:.1f}")
    print(f"target < {TARGET_S:.0f} s for {n} runs: cold {'met' if cold_s < TARGET_S else 'NOT met'}, "
          f"warm {'met' if warm_s < TARGET_S else 'NOT met'}")
    print(f"tables of the cold and warm reports byte-identical: {'yes' if identical else 'NO'}")
    print(f"old and new readers: equal frames and tables on {len(subset)} runs: {'yes' if equal else 'NO'}")
    return 0 if identical and equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
