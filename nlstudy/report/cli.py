"""``nlstudy report``: logged runs -> paper-style tables (md, tex, csv), figures and an index.

    nlstudy report (--runs DIR | --wandb ENTITY/PROJECT) [--sweep ID] [--out results/]
                   [--tables 2a,2c] [--strict] [--cache-dir DIR | --no-cache]

With --runs, what was read out of each run's log is cached (:mod:`nlstudy.report.logcache`; by
default under ~/.cache/nlstudy/report): a second report reads only the logs that changed since.

Exit codes: 0 done; 1 ``--strict`` and a row has no finished run (nothing written); 2 bad input
(missing directory, no runs, unknown table id, bad ENTITY/PROJECT, no W&B credentials), reported
as one line on stderr before any expensive work.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from nlstudy.errors import UsageError
from nlstudy.report import collect, logcache, specs, sweeps, tables
from nlstudy.report import render

PROG = "nlstudy report"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Regenerate the ablation tables and figures from logged runs.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--runs", metavar="DIR", help="offline runs: a runs root, a wandb dir or one run dir")
    source.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read the runs of a W&B project (wandb.Api)")
    p.add_argument("--sweep", metavar="ID", help="only the runs of this sweep")
    p.add_argument("--out", default="results", metavar="DIR", help="output directory (default: results/)")
    p.add_argument("--tables", metavar="IDS",
                   help=f"comma-separated table ids (default: every table found); registered: {', '.join(specs.TABLES)}")
    p.add_argument("--strict", action="store_true", help="fail when a row has no finished run")
    cache = p.add_mutually_exclusive_group()
    default_cache = f"${logcache.CACHE_ENV}, else $XDG_CACHE_HOME/nlstudy/report, else ~/.cache/nlstudy/report"
    cache.add_argument("--cache-dir", metavar="DIR",
                       help=f"with --runs: where to keep what was read of each run's log (default: {default_cache})")
    cache.add_argument("--no-cache", action="store_true", help="with --runs: read every run's log, keep nothing")
    return p


@dataclasses.dataclass
class Report:
    """What :func:`write_report` made: the table frames, their Markdown, and the files written."""

    tables: dict[str, pd.DataFrame]
    markdown: dict[str, str]
    files: list[Path]


def parse_table_ids(text: str | None) -> list[str] | None:
    """``"2a,2c"`` -> ["2a", "2c"]; a UsageError naming the unknown id and the valid ones."""
    if text is None:
        return None
    ids = [t.strip() for t in text.split(",") if t.strip()]
    if not ids:
        raise UsageError(f"--tables: no table id given; valid: {', '.join(specs.TABLES)}")
    for table_id in ids:
        try:
            specs.table_spec(table_id)
        except ValueError as err:
            raise UsageError(f"--tables: {err}") from None
    return ids


def write_report(
    collection: collect.Collection,
    out: str | Path,
    *,
    table_ids: Sequence[str] | None = None,
    expected: pd.DataFrame | None = None,
    strict: bool = False,
    command: str = PROG,
    source: str = "",
) -> Report:
    """Build every table, then write ``<id>.md/.tex/.csv``, ``figures/<id>_*.png/.pdf`` and
    ``README.md`` into `out`. With `strict`, all tables are checked before anything is written."""
    from nlstudy.report import plots  # matplotlib only once there is something to draw

    runs, history = collection.runs, collection.history
    ids = list(table_ids) if table_ids else specs.table_ids(runs, expected)
    built = {t: tables.build_table(runs, t, expected=expected, strict=strict) for t in ids}
    out = Path(out)
    fig_dir = out / "figures"
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    markdown: dict[str, str] = {}
    index = []
    for table_id, table in built.items():
        markdown[table_id] = render.to_markdown(table)
        entries = []
        for ext, text in (("md", markdown[table_id]), ("tex", render.to_latex(table)), ("csv", render.to_csv(table))):
            path = out / f"{table_id}.{ext}"
            path.write_text(text)
            files.append(path)
            entries.append(f"[{path.name}]({path.name})")
        figures = []
        assigned = tables.assign_rows(runs, table_id, expected=expected)
        for kind, fig in (
            ("acc_vs_flops", plots.plot_accuracy_vs_flops(table)),
            ("bars", plots.plot_bars(table)),
            ("curves", plots.plot_curves(assigned, history, title=table.attrs.get("title", ""))),
        ):
            if fig is None:
                continue
            paths = plots.save(fig, fig_dir / f"{table_id}_{kind}")
            files.extend(paths)
            figures.append(paths[0])
        index.append((table_id, table, entries, figures))
    readme = out / "README.md"
    readme.write_text(_readme(index, runs, command, source, markdown))
    files.append(readme)
    return Report(tables=built, markdown=markdown, files=files)


def _readme(index, runs: pd.DataFrame, command: str, source: str, markdown: dict[str, str]) -> str:
    states = runs["state"].value_counts() if len(runs) else pd.Series(dtype=int)
    # most common first, ties in W&B's order of states: value_counts alone leaves ties in the frame's order
    rank = {state: i for i, state in enumerate(collect.RUN_STATES)}
    order = sorted(states.items(), key=lambda sn: (-sn[1], rank.get(sn[0], len(rank)), str(sn[0])))
    counts = ", ".join(f"{int(n)} {s}" for s, n in order)
    untabled = int(runs["table"].isna().sum()) if len(runs) else 0
    lines = ["# Ablation results", "", "Made by:", "", f"    {command}", "",
             f"From {len(runs)} runs ({counts or 'none'}){f' in {source}' if source else ''}."]
    if untabled:
        lines.append(f"{untabled} run(s) carry no `table` config key and appear in no table.")
    lines.append("")
    lines.append("| table | files | figures |")
    lines.append("|:---|:---|:---|")
    for table_id, table, entries, figures in index:
        figs = " · ".join(f"[{p.stem.removeprefix(table_id + '_')}](figures/{p.name})" for p in figures)
        lines.append(f"| {table_id} | {' · '.join(entries)} | {figs} |")
    lines.append("")
    for table_id, table, entries, figures in index:
        lines.append(markdown[table_id])
        lines.extend(f"![{p.stem}](figures/{p.name})" for p in figures)
        lines.append("")
    lines.extend(_failed_runs(runs))
    return "\n".join(lines)


def _failed_runs(runs: pd.DataFrame) -> list[str]:
    """The README's list of the runs that failed or crashed, each with its reason (the `note` column)."""
    failed = runs[runs["state"].isin(collect.FAILED_STATES)].sort_values("run_id") if len(runs) else runs
    if not len(failed):
        return []
    lines = ["## Failed runs", "", "No number of theirs is in any table.", "", "| run | table | state | reason |",
             "|:---|:---|:---|:---|"]
    for r in failed.to_dict("records"):
        cells = (r["run_id"], _text(r["table"], ""), r["state"], _text(r["note"], "no reason recorded"))
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return [*lines, ""]


def _text(value: object, empty: str) -> str:
    """A text cell of the runs frame, or `empty` for None / NaN / ""."""
    return value if isinstance(value, str) and value else empty


def _check_source(args: argparse.Namespace) -> None:
    if args.runs is not None:
        root = Path(args.runs)
        if not root.is_dir():
            raise UsageError(f"--runs: no such directory: {root}")
        if not collect.find_run_files(root):
            raise UsageError(f"--runs: no wandb runs under {root} (looked for run-*.wandb)")
    else:
        parts = args.wandb.split("/")
        if len(parts) != 2 or not all(parts):
            raise UsageError(f"--wandb: expected ENTITY/PROJECT, got {args.wandb!r}")


def _collect(args: argparse.Namespace) -> tuple[collect.Collection, pd.DataFrame | None, str]:
    if args.runs is not None:
        cache = None if args.no_cache else logcache.LogCache(args.cache_dir)
        collection = sweeps.read_local(args.runs, sweep=args.sweep, cache=cache)
        expected = sweeps.planned(sweeps.find_sweep_files(args.runs), sweep=args.sweep)
        return collection, expected, args.runs
    try:
        import wandb

        api = wandb.Api()
    except Exception as err:  # no credentials, no server: wandb raises several kinds
        raise UsageError(f"--wandb: cannot reach the W&B API ({type(err).__name__}: {err})") from None
    return collect.read_wandb(args.wandb, sweep=args.sweep, api=api), None, args.wandb


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nlstudy report``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    try:
        table_ids = parse_table_ids(args.tables)
        _check_source(args)
        collection, expected, source = _collect(args)
        if collection.runs.empty:
            raise UsageError(f"no runs{f' of sweep {args.sweep}' if args.sweep else ''} in {source}")
    except UsageError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    command = " ".join([PROG, shlex.join(argv)])
    collection, note = specs.file_untabled(collection, table_ids)
    if note:
        print(f"{PROG}: {note}", file=sys.stderr)
    try:
        report = write_report(collection, args.out, table_ids=table_ids, expected=expected,
                              strict=args.strict, command=command, source=source)
    except tables.MissingRowsError as err:
        print(f"{PROG}: --strict: {err}", file=sys.stderr)
        return 1
    for text in report.markdown.values():
        print(text)
    print(f"wrote {len(report.files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
