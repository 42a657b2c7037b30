"""``nlstudy sweep FILE ... --until-decided [--max-seeds N]``: run the files' seeds, then add seeds to the rows
whose verdict is undecided, in rounds, until each row is decided or has N seeds; then write the report.

    round 0   the sweep files as written, each with ``report.looks`` set: its seeds (3) are the first look
    round k   the report's verdicts on the files' tables (one family); every undecided row below N seeds goes
              to the next planned look (3 -> 6 -> 10), its baseline to at least as many seeds
              (:func:`nlstudy.report.stats.plan_round`); the new seeds run as small sweep files of their own,
              one per configuration of the row (its parameters, ``seed_everything`` the new seeds), under the
              same runs root: ordinary runs of the same table, reused, resumable and counted once
    end       no row to add seeds to: the report of the files' tables goes to --out

The looks are planned before the first run (``report.looks`` travels in every run's config), and the report
divides each p-value by its look's share of alpha (:mod:`nlstudy.report.stats`), so the repeated looks keep
the stated error rate; the simulations of tests/test_report_stats.py run this decision code. The family of
the decisions is the comparisons of the files given together: `nlstudy report` over more tables corrects
over more comparisons, and may call a row undecided that this call decided.

This module sits above the sweep and report layers (it drives the one with the other's verdicts); it imports
no torch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from nlstudy import files, interrupts, keys
from nlstudy.errors import UsageError
from nlstudy.records import all_records, find_sweep_files, flat_values
from nlstudy.report import cli as report_cli
from nlstudy.report import stats, sweeps, tables
from nlstudy.sweep import cli as sweep_cli
from nlstudy.sweep.spec import Sweep, SweepError, load

PROG = "nlstudy sweep --until-decided"
ROUNDS_DIR = "until_decided"  # under the runs root: the sweep files of the added seeds, one per row and round
NOT_WITH = ("count", "online", "sweep_id", "check")  # options that make no sense for a study that adds its own runs


def _say(line: str) -> None:
    print(f"{PROG}: {line}", flush=True)


def seed_values(sweep: Sweep) -> list[int]:
    """The seeds a grid sweep file runs (its ``seed_everything`` values), or a UsageError saying why it cannot add
    seeds."""
    if sweep.method != "grid":
        raise UsageError(f"{sweep.path}: --until-decided adds seeds to a grid sweep; this one is {sweep.method}")
    spec = (sweep.config.get("parameters") or {}).get(keys.SEED)
    values = spec.get("values", [spec["value"]] if "value" in spec else None) if isinstance(spec, Mapping) else None
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise UsageError(f"{sweep.path}: --until-decided needs parameters.seed_everything with integer values "
                         "(the seeds of the first look), e.g. seed_everything: {values: [0, 1, 2]}")
    if len(set(values)) != len(values):
        raise UsageError(f"{sweep.path}: parameters.seed_everything repeats a seed: {values}")
    return list(values)


def with_looks(sweep: Sweep, looks: Sequence[int], parameters: Mapping[str, Any] | None = None,
               path: Path | None = None, name: str | None = None) -> Sweep:
    """`sweep` with ``report.looks`` set (and its parameters replaced by `parameters` where given), as a sweep of
    its own (its id comes from its content), kept at `path`."""
    config = json.loads(json.dumps(sweep.config))
    if parameters is not None:
        config["parameters"] = json.loads(json.dumps(parameters))
    config["parameters"][keys.REPORT_LOOKS] = {"value": list(looks)}
    if name:
        config["name"] = name
    text = yaml.safe_dump(config, sort_keys=False)
    return Sweep(path or sweep.path, text, config)


def _write(sweep: Sweep) -> Path:
    sweep.path.parent.mkdir(parents=True, exist_ok=True)
    files.write_text(sweep.path, sweep.text)
    return sweep.path


def _table_of(sweep: Sweep) -> str | None:
    spec = (sweep.config.get("parameters") or {}).get(keys.TABLE)
    return str(spec["value"]) if isinstance(spec, Mapping) and "value" in spec else None


def row_configs(records: Iterable[Mapping[str, Any]], table_id: str, run_ids: set[str]) -> list[dict[str, Any]]:
    """The parameters (W&B's {name: {"value": v}} form, without the seed and the looks) of the sweep runs of
    `table_id` whose wandb run is one of `run_ids`: the configurations that make one table row."""
    found: dict[str, dict[str, Any]] = {}
    for rec in records:
        config = rec.get("config") or {}
        if rec.get("wandb_id") not in run_ids or flat_values(config).get(keys.TABLE) != table_id:
            continue
        params = {k: v for k, v in config.items() if k not in (keys.SEED, keys.REPORT_LOOKS)}
        found.setdefault(json.dumps(params, sort_keys=True, default=str), params)
    return [found[k] for k in sorted(found)]


def used_seeds(records: Iterable[Mapping[str, Any]], params: Mapping[str, Any]) -> set[int]:
    """Every seed some run of the configuration `params` was given, whatever its end (a failed seed is not given
    again: it would fail again)."""
    want = json.dumps(params, sort_keys=True, default=str)
    out = set()
    for rec in records:
        config = rec.get("config") or {}
        params_ = {k: v for k, v in config.items() if k not in (keys.SEED, keys.REPORT_LOOKS)}
        seed = (config.get(keys.SEED) or {}).get("value")
        if json.dumps(params_, sort_keys=True, default=str) == want and isinstance(seed, int):
            out.add(seed)
    return out


def new_seeds(used: set[int], count: int) -> list[int]:
    """The `count` smallest non-negative seeds not in `used`."""
    out, seed = [], 0
    while len(out) < count:
        if seed not in used:
            out.append(seed)
        seed += 1
    return out


class Study:
    """The files of one `--until-decided` call, their looks and the rounds of seeds added to them."""

    def __init__(self, sweeps_: Sequence[Sweep], runs_root: Path, max_seeds: int):
        self.runs_root, self.max_seeds = runs_root, max_seeds
        self.files, self.looks = [], {}
        for sweep in sweeps_:
            table_id = _table_of(sweep)
            if table_id is None:
                raise UsageError(f"{sweep.path}: --until-decided needs parameters.table (the table whose verdicts "
                                 "decide which rows get more seeds)")
            looks = stats.look_schedule(len(seed_values(sweep)), max_seeds)
            if self.looks.setdefault(table_id, looks) != looks:
                raise UsageError(f"--until-decided: two files of table {table_id} plan other seeds "
                                 f"({self.looks[table_id]} and {looks})")
            self.files.append(sweep)
        self.table_ids = list(dict.fromkeys(_table_of(s) for s in self.files))

    def first_round(self) -> list[Sweep]:
        """The files as written, each with its looks: the first look."""
        return [with_looks(s, self.looks[_table_of(s)], path=self.runs_root / ROUNDS_DIR / f"{s.path.stem}.r0.yaml")
                for s in self.files]

    def verdicts(self) -> dict[str, Any]:
        """The files' tables as the report builds them now (one family), from the runs under the runs root."""
        collection = sweeps.read_local(self.runs_root)
        runs = collection.runs
        return tables.build_tables(runs, self.table_ids, scope="report") if len(runs) else {}

    def next_round(self, built: Mapping[str, Any], round_: int) -> tuple[list[Sweep], list[str]]:
        """The sweep files that bring every undecided row (and its baseline) to its next look, and a line per row
        saying so; ([], []) when the study is decided or at its most seeds."""
        records = all_records(self.runs_root)
        out, lines = [], []
        for table_id, table in built.items():
            looks = self.looks[table_id]
            lines_of = tables.seeds(table)
            counted = lines_of[lines_of["counted"].astype(bool)]
            rows = []
            base_of = {g: lab for g, lab, b in zip(table["group"], table["label"], table["baseline"]) if b}
            for row in table.to_dict("records"):
                if row["baseline"] or row["group"] not in base_of:
                    continue
                rows.append(((row["group"], row["label"]), (row["group"], base_of[row["group"]]), row["n"],
                             row["verdict"]))
            plan = stats.plan_round(rows, looks)
            n_of = {(g, lab): n for g, lab, n in zip(table["group"], table["label"], table["n"])}
            for (group, label), target in sorted(plan.items()):
                missing = target - n_of[(group, label)]
                if missing <= 0:
                    continue
                ids = set(counted[(counted["group"] == group) & (counted["label"] == label)]["run_id"].astype(str))
                configs = row_configs(records, table_id, ids) if ids else []
                if not configs:
                    lines.append(f"{table_id}: {label} ({group}) has no finished run to take its configuration "
                                 "from; not extended")
                    continue
                for params in configs:
                    seeds_ = new_seeds(used_seeds(records, params), missing)
                    digest = hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:8]
                    base = next(s for s in self.files if _table_of(s) == table_id)
                    path = self.runs_root / ROUNDS_DIR / f"{base.path.stem}.r{round_}.{digest}.yaml"
                    out.append(with_looks(base, looks, {**params, keys.SEED: {"values": seeds_}}, path=path,
                                          name=f"{base.config.get('name', base.path.stem)}: {label}, seeds "
                                               f"{seeds_[0]}-{seeds_[-1]}"))
                lines.append(f"{table_id}: {label}" + ("" if group == "all" else f" ({group})")
                             + f": {n_of[(group, label)]} -> {target} seeds")
        return out, lines


def parser() -> argparse.ArgumentParser:
    return sweep_cli.parser()


@interrupts.one_line(PROG, "run the same command again to go on")
def main(argv: list[str]) -> int:
    """Entry point of `nlstudy sweep ... --until-decided`; returns the exit code."""
    args = sweep_cli.parser().parse_args(argv)
    try:
        for name in NOT_WITH:
            if getattr(args, name):
                raise UsageError(f"--{name.replace('_', '-')} cannot be used with --until-decided (it adds its own runs)")
        if args.max_seeds < 2:
            raise UsageError(f"--max-seeds: at least 2 seeds a row are needed for a test, got {args.max_seeds}")
        study = Study([load(f) for f in args.files], Path(args.runs_root), args.max_seeds)
    except (UsageError, SweepError) as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    passthrough = _passthrough(args)
    code = 0
    round_, batch = 0, study.first_round()
    for looks_table, looks in study.looks.items():
        _say(f"table {looks_table}: looks at {', '.join(map(str, looks))} seeds a row (alpha shared over them)")
    while batch:
        files = [str(_write(s)) for s in batch]
        round_code = sweep_cli.main([*files, *passthrough])
        if round_code == 2 or round_code in interrupts.EXIT_CODES:  # bad input; Ctrl-C, SIGTERM, SIGHUP
            return round_code
        code = max(code, round_code)
        built = study.verdicts()
        round_ += 1
        batch, lines = study.next_round(built, round_)
        if batch:
            _say(f"round {round_}: more seeds for the undecided rows")
            for line in lines:
                _say(f"  {line}")
    built = study.verdicts()
    compared = sum(int((t["verdict"] != "").sum()) for t in built.values())
    undecided = sum(int((t["verdict"] == "undecided").sum()) for t in built.values())
    _say("no row has a baseline to be compared with" if not compared else "every row decided" if not undecided else
         f"{undecided} of {compared} row(s) still undecided at {args.max_seeds} seeds (or without a run to extend)")
    return max(code, write(study, Path(args.out) if args.out else Path(args.runs_root) / "report", argv))


def write(study: Study, out: Path, argv: Sequence[str]) -> int:
    """The report of the study's tables (as `nlstudy report --runs RUNS_ROOT` writes it), printed and written
    to `out`."""
    collection = sweeps.read_local(study.runs_root)
    expected = sweeps.planned(find_sweep_files(study.runs_root))
    command = " ".join(["nlstudy sweep", *argv])
    try:
        report = report_cli.write_report(collection, out, table_ids=study.table_ids, expected=expected,
                                         command=command, source=str(study.runs_root))
    except ValueError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    for text in report.markdown.values():
        print(text)
    _say(f"wrote {len(report.files)} files to {out}")
    return 0


def _passthrough(args: argparse.Namespace) -> list[str]:
    """The options of the sweep command that every round runs with."""
    out = ["--runs-root", str(args.runs_root), "--jobs", str(args.jobs)]
    if args.project:
        out += ["--project", args.project]
    if not args.warm:
        out.append("--no-warm")
    if not args.reuse:
        out.append("--no-reuse")
    return out
