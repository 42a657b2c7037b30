"""Every sweep file in sweeps/ and sweeps/demo/ validates, expands into the nlstudy command the
decisions call for, plans exactly its table's rows (baseline first, 3 seeds each) as the report reads
them, and is accepted by the training CLI (`nlstudy check`)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nlstudy.records import config_key, flat_values
from nlstudy.report.schema import FIXED_COLUMNS
from nlstudy.report.specs import TABLES
from nlstudy.report.sweeps import planned_runs
from nlstudy.report.tables import build_table
from nlstudy.sweep import command as cmd
from nlstudy.sweep import engine, plan
from nlstudy.sweep.check import check_sweeps, run_nlstudy_check, training_args
from nlstudy.sweep.engine import grid_points
from nlstudy.sweep.reuse import reuse_key
from nlstudy.sweep.spec import candidates, load

ROOT = Path(__file__).parent.parent
PAPER = sorted((ROOT / "sweeps").glob("*.yaml"))
DEMO_SUITE = sorted((ROOT / "sweeps" / "demo").glob("*.yaml"))  # what `make demo` runs
DEMO = DEMO_SUITE + sorted((ROOT / "sweeps" / "demo" / "more").glob("*.yaml"))  # the other tables, at CPU scale
FILES = PAPER + DEMO
STUDY = ROOT / "sweeps" / "demo" / "study"  # what `make analysis` runs (tests/test_study_sweeps.py checks the files)
PAPER_TABLES = {"2a", "2b", "2c", "2d", "2e", "2f", "2g", "subsample", "resolution", "inter_ratio", "scale", "control"}
SEEDS = [0, 1, 2]
SEEDS_OF: dict[str, list[int]] = {}


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_make_analysis_runs_the_rate_sweeps_then_every_study_file_at_its_chosen_rates():
    """The rate sweeps from the committed files, the study from the copies tuning writes under the runs root."""
    makefile = (ROOT / "Makefile").read_text()
    rate, study = makefile.split("RATE_SWEEPS := ")[1].splitlines()[0], \
        makefile.split("STUDY_SWEEPS := ")[1].splitlines()[0]
    assert rate.split() == ["$(STUDY)/reach_lr.yaml", "$(STUDY)/far_lr.yaml"]
    assert {p.name for p in STUDY.glob("*.yaml")} == set(study.split()) | {"reach_lr.yaml", "far_lr.yaml"}
    recipe = makefile.split("\nanalysis:")[1]
    steps = [recipe.index(s) for s in ("$(RATE_SWEEPS)", "nlstudy.analysis.tuning", "$(ANALYSIS_RUNS)/study/",
                                       "nlstudy.analysis.notebooks")]
    assert steps == sorted(steps)
    assert not any("/study/" in rel(f) for f in DEMO_SUITE)  # the study is not part of make demo


def test_the_expected_files_exist():
    tables = lambda files: {load(f).config["parameters"]["table"]["value"] for f in files}  # noqa: E731
    assert tables(PAPER) == PAPER_TABLES
    assert tables(DEMO) == PAPER_TABLES | {"locality"}
    assert {f.name for f in DEMO} - {"locality.yaml"} == {f.name for f in PAPER}


@pytest.mark.parametrize("path", FILES, ids=rel)
def test_file_is_a_table_sweep(path, tmp_path):
    sweep = load(path)  # schema, method, macros, engine
    config = sweep.config
    base = "experiments/kinetics.yaml" if path in PAPER else "experiments/demo.yaml"
    assert (ROOT / base).is_file()
    assert config["method"] == "grid"
    assert config["metric"] == {"name": "val/top1_best", "goal": "maximize"}
    assert config["command"] == ["nlstudy", "fit", "--config", base, "--config", "${args_json_file}"]
    params = config["parameters"]
    table = params["table"]["value"]
    assert table in TABLES
    seeds = SEEDS_OF.get(table, SEEDS)
    assert params["seed_everything"] == {"values": seeds}

    # the rows: one dict per row under model.backbone, the plain baseline first, no row twice
    rows = params["model.backbone"]["values"]
    assert rows[0]["nonlocal_blocks"] == "none" and rows[0].get("arch", "c2d") == "c2d"
    assert len({json.dumps(r, sort_keys=True) for r in rows}) == len(rows)

    # the other grid axes (the values lists besides the rows and the seeds): their product
    other_rows = 1
    for name, spec in params.items():
        if name not in ("table", "seed_everything", "model.backbone") and "values" in spec:
            other_rows *= len(spec["values"])

    # the engine plans every row x seed once; the expansion is the nlstudy command with the values file
    points = engine.grid_points(sweep.engine_config)
    assert len(points) == sweep.planned_count() == len(rows) * other_rows * len(seeds)
    assert len({json.dumps(p, sort_keys=True) for p in points}) == len(points)
    run = cmd.RunArgs(points[0], None, str(tmp_path / "args.json"))
    assert cmd.expand(sweep.command, run) == ["nlstudy", "fit", "--config", base, "--config", run.args_json_file]
    assert json.loads(cmd.args_json_text(run))["table"] == table

    # the sweep writes its plan beside sweeps/<id>/sweep.yaml; the report finds each row once, 3 seeds each
    kept = tmp_path / "sweeps" / sweep.default_id / "sweep.yaml"
    kept.parent.mkdir(parents=True)
    shutil.copy(path, kept)
    assert plan.write(kept.parent)
    expected = planned_runs(kept)
    assert len(expected) == len(points) and set(expected["table"]) == {table}
    built = build_table(pd.DataFrame(columns=list(FIXED_COLUMNS)), table, expected=expected)
    assert len(built) == len(rows) * other_rows
    assert (built["n_missing"] == len(seeds)).all()


@pytest.mark.slow  # starts the training CLI in a subprocess (torch + LightningCLI): seconds
def test_every_row_is_accepted_by_the_training_cli(tmp_path):
    """One `nlstudy check` for every row of every file (seed 0; the slow test checks every run)."""
    arg_lists = []
    for i, path in enumerate(FILES):
        sweep = load(path)
        for j, point in enumerate(candidates(sweep)):
            if point["seed_everything"]["value"] != 0:
                continue
            run = cmd.RunArgs(point, None, str(tmp_path / f"{i}-{j}.json"))
            Path(run.args_json_file).write_text(cmd.args_json_text(run))
            arg_lists.append(training_args(cmd.expand(sweep.command, run)))
    results = run_nlstudy_check(arg_lists, machine=False)  # the paper's files are for GPU machines
    bad = [(args, r["error"]) for args, r in zip(arg_lists, results) if not r["ok"]]
    assert not bad


@pytest.mark.slow
def test_every_run_of_every_file_passes_nlstudy_sweep_check():
    # as on a login node: the paper's files are for GPU machines (tests/test_sweep_validate.py checks the machine)
    proc = subprocess.run([sys.executable, "-m", "nlstudy", "sweep", "--check", "--check-only-config", *map(rel, FILES)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(": ok, grid sweep") == len(FILES)


def test_demo_suite_size():
    """The demo suite's run count (the budget: about 20 minutes on 2 cores at ~20 s a run, --jobs 2)."""
    assert {load(f).config["parameters"]["table"]["value"] for f in DEMO_SUITE} == {
        "2a", "2b", "2c", "2d", "2e", "control", "locality"}
    assert sum(load(f).planned_count() for f in DEMO_SUITE) == 90


@pytest.mark.slow  # one `nlstudy check` subprocess over the 90 runs
def test_the_demo_suite_resolves_to_57_distinct_runs():
    """The check resolves every run the demo plans (`resolved_key`), and the agent's reuse key follows it: the
    baseline every table plans is 3 runs (one per seed), the 1-block model of 2a (its default pairwise function
    spelled out) is 2c's, and 2c's res3+res4 model is 2d's spacetime row; 57 distinct runs of the 90 planned."""
    sweeps = [load(f) for f in DEMO_SUITE]
    checked = check_sweeps(sweeps)
    assert checked.notes == []
    by_table = {}
    for sweep, resolved in zip(sweeps, checked.resolved):
        points = grid_points(sweep.engine_config)  # in the order the agent's engine proposes them
        assert len(resolved) == len(points) and all(config_key(p) in resolved for p in points)
        table = sweep.config["parameters"]["table"]["value"]
        by_table[table] = [(flat_values(p), reuse_key(sweep, p, 1, resolved)) for p in points]
    every = [key for rows in by_table.values() for _, key in rows]
    assert len(every) == 90 and len(set(every)) == 57

    def key(table, seed, task="far", **values):  # the reuse key of one planned run (demo.yaml's task: far)
        found = [k for flat, k in by_table[table] if flat["seed_everything"] == seed
                 and flat.get("data.synthetic.task", "far") == task
                 and all(flat.get(f"model.backbone.{name}") == v for name, v in values.items())]
        assert len(found) == 1, (table, seed, values)
        return found[0]

    for seed in (0, 1, 2):
        baseline = key("2a", seed, nonlocal_blocks="none")
        assert all(key(t, seed, nonlocal_blocks="none") == baseline for t in ("2b", "2c", "2d", "control", "locality"))
        assert key("2e", seed, arch="c2d", nonlocal_blocks="none") == baseline
        assert key("2a", seed, **{"nl.pairwise": "embedded_gaussian"}) == key("2c", seed, nonlocal_blocks="1-block")
        assert key("locality", seed, nonlocal_blocks="1-block") == key("2c", seed, nonlocal_blocks="1-block")
        two = {"nonlocal_blocks": {"res3": [1], "res4": [1]}}
        assert key("2c", seed, **two) == key("2d", seed, **{"nl.mode": "spacetime"}) == key("2e", seed, arch="c2d", **two)
        assert key("2d", seed, **{"nl.mode": "space"}) != key("2d", seed, **{"nl.mode": "spacetime"})
        assert key("locality", seed, task="near", nonlocal_blocks="none") != baseline
        assert key("2a", seed, **{"nl.pairwise": "gaussian"}) != key("2a", seed, **{"nl.pairwise": "embedded_gaussian"})
    assert len({key("2a", seed, nonlocal_blocks="none") for seed in (0, 1, 2)}) == 3
    # the thread count is part of a run's identity
    sweep, resolved = sweeps[0], checked.resolved[0]
    point = grid_points(sweep.engine_config)[0]
    assert reuse_key(sweep, point, 1, resolved) != reuse_key(sweep, point, 2, resolved)
