"""``nlstudy report``: logged runs -> paper-style tables (md, tex, csv), figures and an index.

    nlstudy report (--runs DIR | --wandb ENTITY/PROJECT) [--sweep ID] [--out results/]
                   [--tables 2a,2c] [--strict] [--metric test/top1] [--margin 2] [--family report|table]
                   [--cache-dir DIR | --no-cache]

Every row is compared with its group's baseline on the primary metric (``test/top1``, the test accuracy of
the model each run ends with, unless --metric or a sweep file's ``report.metric`` says otherwise): Δ with its
95 % Welch interval, Welch's p, Holm's adjustment over every distinct comparison of the call (--family
table: over each table's own), TOST against ±margin, the minimal detectable effect, and a verdict
(:mod:`nlstudy.report.family`). Each table's per-run values go to ``<id>_runs.csv`` beside it.

With --runs, what was read out of each run's log is cached (:mod:`nlstudy.report.logcache`; by
default under ~/.cache/nlstudy/report): a second report reads only the logs that changed since.

Exit codes: 0 done; 1 ``--strict`` and a row has no finished run (nothing written), or an output could not
be written (a full disk: one line naming it; every file is written whole or not at all); 2 bad input
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

from nlstudy import interrupts, records
from nlstudy.files import write_text
from nlstudy.errors import UsageError
from nlstudy.report import family, findings, logcache, offline, schema, specs, stats, sweeps, tables, wandb_api
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
    p.add_argument("--metric", metavar="KEY",
                   help="the logged metric every table compares (default: each sweep file's report.metric, else "
                        "test/top1, the test top-1 of the model a run ends with); e.g. val/top1_best")
    p.add_argument("--margin", type=_margin, metavar="POINTS",
                   help=f"equivalence margin in points of the metric (default: each sweep file's report.margin, "
                        f"else {stats.MARGIN:g}): a row is 'equivalent' when TOST shows |Δ| < margin")
    p.add_argument("--family", choices=family.SCOPES, default="report",
                   help="what Holm's correction runs over: every distinct comparison of this report (default), "
                        "or each table on its own")
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


def _margin(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number of points, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of points, got {text!r}")
    return value


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
    collection: schema.Collection,
    out: str | Path,
    *,
    table_ids: Sequence[str] | None = None,
    expected: pd.DataFrame | None = None,
    strict: bool = False,
    command: str = PROG,
    source: str = "",
    metric: str | None = None,
    margin: float | None = None,
    scope: str = "report",
) -> Report:
    """Build every table (their comparisons one family: `scope`), then write ``<id>.md/.tex/.csv``,
    ``<id>_runs.csv``, ``figures/<id>_*.png/.pdf`` and ``README.md`` into `out`. With `strict`, all tables
    are checked before anything is written."""
    from nlstudy.report import plots# matplotlib only once there is something to draw

    runs, history = collection.runs, collection.history
    ids = list(table_ids) if table_ids else specs.table_ids(runs, expected)
    built, assignments = tables.build_tables_with_rows(runs, ids, expected=expected, strict=strict, metric=metric,
                                                       margin=margin, scope=scope)
    out = Path(out)
    fig_dir = out / "figures"
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    markdown: dict[str, str] = {}
    index = []
    for table_id, table in built.items():
        markdown[table_id] = render.to_markdown(table)
        entries = []
        for name, text in ((f"{table_id}.md", markdown[table_id]), (f"{table_id}.tex", render.to_latex(table)),
                           (f"{table_id}.csv", render.to_csv(table)),
                           (f"{table_id}_runs.csv", render.runs_csv(tables.seeds(table)))):
            path = out / name
            write_text(path, text)  # whole or not at all: a full disk leaves the old file, never half of one
            files.append(path)
            entries.append(f"[{path.name}]({path.name})")
        figures = []
        assigned = assignments[table_id]
        for kind, fig in (
            ("acc_vs_flops", plots.plot_accuracy_vs_flops(table)),
            ("bars", plots.plot_bars(table)),
            ("curves", plots.plot_curves(assigned, history, title=table.attrs.get("title", ""),
                                         chance=plots.chance_level(table))),
        ):
            if fig is None:
                continue
            paths = plots.save(fig, fig_dir / f"{table_id}_{kind}")
            files.extend(paths)
            figures.append(paths[0])
        index.append((table_id, table, entries, figures))
    readme = out / "README.md"
    write_text(readme, _readme(index, runs, command, source, markdown))
    files.append(readme)
    return Report(tables=built, markdown=markdown, files=files)


def _readme(index, runs: pd.DataFrame, command: str, source: str, markdown: dict[str, str]) -> str:
    states = runs["state"].value_counts() if len(runs) else pd.Series(dtype=int)
    # most common first, ties in W&B's order of states: value_counts alone leaves ties in the frame's order
    rank = {state: i for i, state in enumerate(schema.RUN_STATES)}
    order = sorted(states.items(), key=lambda sn: (-sn[1], rank.get(sn[0], len(rank)), str(sn[0])))
    counts = ", ".join(f"{int(n)} {s}" for s, n in order)
    unset = int(runs["table"].isna().sum()) if len(runs) else 0  # --tables picked the tables: in none of them
    filed = int((runs["table"] == specs.UNTABLED).sum()) if len(runs) else 0  # filed by specs.file_untabled
    lines = ["# Ablation results", "", "Made by:", "", f"    {command}", "",
             f"From {len(runs)} runs ({counts or 'none'}){f' in {source}' if source else ''}."]
    if unset or filed:
        where = f"the generic table `{specs.UNTABLED}`" if filed else "no table"
        lines.append(f"{unset + filed} run(s) carry no `table` config key and appear in {where}.")
    lines.append("")
    lines.extend(_verdicts(index))
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


def _verdicts(index) -> list[str]:
    """The README's summary of the statistics: the family, and each table's verdicts in one sentence."""
    built = [table for _, table, _, _ in index if "family" in table.attrs]
    if not built:
        return []
    fam = built[0].attrs["family"]
    scope = (f"the {fam['size']} distinct comparisons of this report (a comparison several tables show on the same "
             "runs counts once)" if fam["scope"] == "report" else "each table's comparisons on their own (--family table)")
    counts = {v: 0 for v in stats.VERDICTS}
    seen: set = set()
    for table in built:
        for c, v in zip(table["comparison"], table["verdict"]):
            if v in counts and (c, v) not in seen:
                seen.add((c, v))
                counts[v] += 1
    lines = [f"Each row is compared with its group's baseline; Holm's correction runs over {scope}, at "
             f"α = {stats.ALPHA:g}. Verdicts: "
             + ", ".join(f"{n} {v}" for v, n in counts.items())
             + ". A row is called the same as its baseline only when equivalent (TOST within the margin); an "
             "undecided row needs more seeds (`nlstudy sweep FILE --until-decided`).", ""]
    lines.extend(f"- {findings.table_summary(table)}" for table in built)
    return [*lines, ""]


def _failed_runs(runs: pd.DataFrame) -> list[str]:
    """The README's list of the runs that failed or crashed, each with its reason (the `note` column)."""
    failed = runs[runs["state"].isin(schema.FAILED_STATES)].sort_values("run_id") if len(runs) else runs
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
        if not offline.find_run_files(root):
            raise UsageError(f"--runs: no wandb runs under {root} (looked for run-*.wandb)")
    else:
        parts = args.wandb.split("/")
        if len(parts) != 2 or not all(parts):
            raise UsageError(f"--wandb: expected ENTITY/PROJECT, got {args.wandb!r}")


def _collect(args: argparse.Namespace) -> tuple[schema.Collection, pd.DataFrame | None, str]:
    if args.runs is not None:
        cache = None if args.no_cache else logcache.LogCache(args.cache_dir)
        collection = sweeps.read_local(args.runs, sweep=args.sweep, cache=cache)
        sweep_files = [f for f in records.find_sweep_files(args.runs) if args.sweep is None or f.parent.name == args.sweep]
        for sweep_dir in sweeps.unknown_plans(sweep_files):
            print(f"{PROG}: note: {sweep_dir} has no {records.PLAN_FILE} (a sweep made before plans were written; "
                  "`nlstudy report` writes it): the runs it planned that never started are not shown", file=sys.stderr)
        return collection, sweeps.planned(sweep_files), args.runs
    try:
        import wandb

        api = wandb.Api()
    except Exception as err:  # no credentials, no server: wandb raises several kinds
        raise UsageError(f"--wandb: cannot reach the W&B API ({type(err).__name__}: {err})") from None
    return wandb_api.read_wandb(args.wandb, sweep=args.sweep, api=api), None, args.wandb


@interrupts.one_line(PROG, "every file it wrote is whole, the others as they were: run it again")
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
                              strict=args.strict, command=command, source=source, metric=args.metric,
                              margin=args.margin, scope=args.family)
    except tables.MissingRowsError as err:
        print(f"{PROG}: --strict: {err}", file=sys.stderr)
        return 1
    except ValueError as err:  # a table's runs disagree on its report settings
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, an --out that is not writable: each file is written whole or not at all
        print(f"{PROG}: cannot write {err.filename or args.out} ({err.strerror or err}); the files written before "
              "it are whole, the others as they were: free space (or pick another --out) and run it again",
              file=sys.stderr)
        return 1
    for text in report.markdown.values():
        print(text)
    print(f"wrote {len(report.files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
