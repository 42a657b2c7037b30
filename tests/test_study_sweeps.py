"""The study's sweep files (sweeps/demo/study/): each validates, plans the runs its header prices, keeps its runs
apart from the receptive-field study where it says so, and is accepted by the training CLI; each arm's rate is
chosen on validation (nlstudy.analysis.tuning) and written into its row."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nlstudy import keys
from nlstudy.analysis.tuning import LR, arm_of, choose_by_arm, with_rates
from nlstudy.sweep import command as cmd
from nlstudy.sweep import engine
from nlstudy.sweep.check import run_nlstudy_check, training_args
from nlstudy.sweep.spec import candidates, load

ROOT = Path(__file__).parent.parent
STUDY = ROOT / "sweeps" / "demo" / "study"
# file -> (table, planned runs): the runs each file's header prices
PLANNED = {"reach_lr.yaml": ("reach_lr", 15), "reach.yaml": ("reach", 45), "data_steps.yaml": ("data_steps", 24),
           "far_lr.yaml": ("far_lr", 15), "far_mixers.yaml": ("far_mixers", 15), "reach_112.yaml": ("reach_112", 12)}
ARM_KEYS = [keys.NONLOCAL_BLOCKS, keys.BLOCK, "model.backbone.arch"]


def test_the_study_files_plan_what_the_design_prices():
    assert {p.name for p in STUDY.glob("*.yaml")} == set(PLANNED)
    for name, (table, runs) in PLANNED.items():
        sweep = load(STUDY / name)
        assert sweep.config["parameters"]["table"] == {"value": table}
        assert sweep.config["command"] == ["nlstudy", "fit", "--config", "experiments/demo.yaml", "--config",
                                           "${args_json_file}"]
        points = engine.grid_points(sweep.engine_config)
        assert len(points) == sweep.planned_count() == runs, name
        assert len({json.dumps(p, sort_keys=True) for p in points}) == runs


def test_rate_sweeps_use_a_seed_of_their_own_and_data_efficiency_its_own_clips():
    main_seeds = set(load(STUDY / "reach.yaml").config["parameters"]["seed_everything"]["values"])
    for name in ("reach_lr.yaml", "far_lr.yaml"):
        seeds = set(load(STUDY / name).config["parameters"]["seed_everything"]["values"])
        assert not seeds & main_seeds  # selection runs are never the study's evidence
    data = load(STUDY / "data_steps.yaml").config["parameters"]
    assert data["data.synthetic.seed"]["value"] != 0  # other clips than the receptive-field study's
    assert data["trainer.max_steps"] == {"value": 512} and len(data["data.synthetic.train_samples"]["values"]) >= 6


@pytest.mark.slow  # one `nlstudy check` subprocess (torch + LightningCLI) over the files' seed-0 runs
def test_every_study_row_is_accepted_by_the_training_cli(tmp_path):
    arg_lists = []
    for i, path in enumerate(sorted(STUDY.glob("*.yaml"))):
        sweep = load(path)
        for j, point in enumerate(candidates(sweep)):
            if point["seed_everything"]["value"] not in (0, 10):
                continue
            run = cmd.RunArgs(point, None, str(tmp_path / f"{i}-{j}.json"))
            Path(run.args_json_file).write_text(cmd.args_json_text(run))
            arg_lists.append(training_args(cmd.expand(sweep.command, run)))
    results = run_nlstudy_check(arg_lists)
    assert [r["error"] for r in results if not r["ok"]] == []


def rate_runs() -> pd.DataFrame:
    """A made-up rate sweep: C2D best at 0.01, NL best at 0.002 (0.005 and 0.01 tie at 0.005 for GC)."""
    rows = []
    for nb, block, rates in (("none", "nonlocal", {0.002: [60, 62], 0.005: [70, 71], 0.01: [80, 79]}),
                             ('{"res3":[1]}', "nonlocal", {0.002: [90, 92], 0.005: [85, 86], 0.01: [50, None]}),
                             ('{"res3":[1]}', "global_context", {0.002: [70, 70], 0.005: [75, 75], 0.01: [75, 75]})):
        for rate, values in rates.items():
            for seed, value in enumerate(values):
                rows.append({keys.NONLOCAL_BLOCKS: nb, keys.BLOCK: block, "model.backbone.arch": "c2d", LR: rate,
                             keys.SEED: seed, keys.VAL_TOP1_BEST: value})
    return pd.DataFrame(rows)


def test_choose_by_arm_takes_each_arms_best_mean_validation_rate():
    chosen = choose_by_arm(rate_runs(), ARM_KEYS)
    arm = lambda nb, block: arm_of({keys.NONLOCAL_BLOCKS: nb, keys.BLOCK: block, "model.backbone.arch": "c2d"},  # noqa: E731
                                   ARM_KEYS)
    assert chosen[arm("none", "nonlocal")] == (0.01, 79.5, 2)
    assert chosen[arm('{"res3":[1]}', "nonlocal")] == (0.002, 91.0, 2)
    assert chosen[arm('{"res3":[1]}', "global_context")][0] == 0.005  # a tie goes to the smaller rate
    # the frame of offline.read_runs holds placement maps as dicts, study.runs_frame as their JSON text: one arm
    as_maps = rate_runs()
    as_maps[keys.NONLOCAL_BLOCKS] = as_maps[keys.NONLOCAL_BLOCKS].map(lambda v: v if v == "none" else json.loads(v))
    assert choose_by_arm(as_maps, ARM_KEYS) == chosen
    with pytest.raises(ValueError, match="no column 'model.optim.lr'"):
        choose_by_arm(rate_runs().drop(columns=[LR]), ARM_KEYS)
    failed = rate_runs()
    failed.loc[failed[keys.BLOCK] == "global_context", keys.VAL_TOP1_BEST] = None
    with pytest.raises(ValueError, match="has no run with val/top1_best"):
        choose_by_arm(failed, ARM_KEYS)


def test_with_rates_writes_each_arms_rate_into_the_study_file():
    runs = rate_runs()
    res2 = runs[(runs[keys.BLOCK] == "nonlocal") & (runs[keys.NONLOCAL_BLOCKS] != "none")].assign(
        **{keys.NONLOCAL_BLOCKS: '{"res2":[1]}'})  # the res2 arm, best at 0.002 like res3's
    residual = runs[runs[keys.BLOCK] == "global_context"].assign(**{keys.BLOCK: "residual"})
    chosen = choose_by_arm(pd.concat([runs, res2, residual], ignore_index=True), ARM_KEYS)
    text = (STUDY / "reach.yaml").read_text()
    out = with_rates(text, chosen, ARM_KEYS)
    assert out.startswith("# learning rates chosen on validation per arm")
    after, before = yaml.safe_load(out), yaml.safe_load(text)
    rates = {json.dumps(r["backbone"], sort_keys=True): r["optim"]["lr"] for r in after["parameters"]["model"]["values"]}
    key = lambda **b: json.dumps({**b, "pool1": True}, sort_keys=True)  # noqa: E731
    assert rates == {key(nonlocal_blocks="none"): 0.01, key(nonlocal_blocks={"res2": [1]}): 0.002,
                     key(nonlocal_blocks={"res3": [1]}): 0.002,
                     key(nonlocal_blocks={"res3": [1]}, block="global_context"): 0.005,
                     key(nonlocal_blocks={"res3": [1]}, block="residual"): 0.005}
    # everything but the rates is the file's
    assert {k: v for k, v in after["parameters"].items() if k != "model"} == \
           {k: v for k, v in before["parameters"].items() if k != "model"}
    assert [r["backbone"] for r in after["parameters"]["model"]["values"]] == \
           [r["backbone"] for r in before["parameters"]["model"]["values"]]
    with pytest.raises(ValueError, match="no single chosen rate"):
        with_rates(text, {k: v for k, v in chosen.items() if "residual" not in k}, ARM_KEYS)


GPU = ROOT / "sweeps" / "study"


def test_the_gpu_recipe_is_complete_and_plans_the_full_size_study():
    """sweeps/study/: the rate sweep and the study the GPU script runs, at the paper's network (ResNet-50 width 64)
    on 112-px frames; the script names both, writes the chosen rates with tuning.with_rates, and parses."""
    import subprocess

    lr, study = load(GPU / "reach_gpu_lr.yaml"), load(GPU / "reach_gpu_112.yaml")
    assert lr.planned_count() == 18 and study.planned_count() == 90
    assert lr.config["parameters"]["trainer.accelerator"] == {"value": "gpu"}
    rows = study.config["parameters"]["model"]["values"]
    assert all(r["backbone"]["depth"] == 50 and r["backbone"]["width"] == 64 for r in rows)
    # every arm of the study has its rate in the rate sweep
    lr_arms = {json.dumps({k: v for k, v in r.items()}, sort_keys=True)
               for r in lr.config["parameters"]["model.backbone"]["values"]}
    assert {json.dumps(r["backbone"], sort_keys=True) for r in rows} == lr_arms
    script = (GPU / "gpu.sh").read_text()
    assert "reach_gpu_lr.yaml" in script and "reach_gpu_112.yaml" in script and "with_rates" in script
    assert subprocess.run(["bash", "-n", str(GPU / "gpu.sh")]).returncode == 0


def test_write_chosen_writes_every_study_file_at_its_arms_rates_and_the_same_bytes_twice(tmp_path, monkeypatch):
    """make analysis's step between the rate sweeps and the study: each file of tuning.PLAN at the rates its rate
    sweep chose, under the runs root (the committed files untouched); reach_112's res4 block at the rate chosen
    for the 7x7 block of the 56-px frames (res3); far_mixers at far_lr's rates."""
    from nlstudy.analysis import tuning

    reach = rate_runs()
    reach = pd.concat([reach, reach[(reach[keys.BLOCK] == "nonlocal") & (reach[keys.NONLOCAL_BLOCKS] != "none")]
                       .assign(**{keys.NONLOCAL_BLOCKS: '{"res2":[1]}', keys.VAL_TOP1_BEST: 99.0, LR: 0.01}),
                       reach[reach[keys.BLOCK] == "global_context"].assign(**{keys.BLOCK: "residual"})],
                      ignore_index=True)
    far_arms = [({"res3": [1], "res4": [1]}, b, "c2d") for b in ("nonlocal", "global_context", "squeeze_excitation",
                                                                 "temporal_residual")] + [("none", "nonlocal", "i3d_3x3x3")]
    far = pd.DataFrame([{keys.NONLOCAL_BLOCKS: nb, keys.BLOCK: b, keys.ARCH: a, LR: lr, keys.SEED: 10,
                         keys.VAL_TOP1_BEST: 50 + 10 * i + (5 if lr == 0.002 else 0)}
                        for i, (nb, b, a) in enumerate(far_arms) for lr in (0.002, 0.005, 0.01)])
    given = {"reach_lr": reach, "far_lr": far}
    monkeypatch.setattr(tuning, "rate_runs", lambda root, table: given[table])
    committed = {p.name: p.read_bytes() for p in STUDY.glob("*.yaml")}
    written = tuning.write_chosen("unused", STUDY, tmp_path / "study")
    assert sorted(p.name for p in written) == ["data_steps.yaml", "far_mixers.yaml", "reach.yaml", "reach_112.yaml"]
    assert {p.name: p.read_bytes() for p in STUDY.glob("*.yaml")} == committed
    rates = lambda name: [r["optim"]["lr"] for r in load(tmp_path / "study" / name)  # noqa: E731
                          .config["parameters"]["model"]["values"]]
    assert rates("reach.yaml") == [0.01, 0.01, 0.002, 0.005, 0.005]  # C2D, NL res2, NL res3, GC, residual
    assert rates("reach_112.yaml") == [0.01, 0.002]  # C2D, NL res4 at NL res3's rate
    assert rates("data_steps.yaml") == [0.01, 0.002]
    assert rates("far_mixers.yaml") == [0.002] * 5  # far_lr's arms are each best at 0.002
    again = tuning.write_chosen("unused", STUDY, tmp_path / "again")
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in written]
    # every generated file is still a valid sweep of its table, with everything but the rates as committed
    for path in written:
        out, before = load(path).config, load(STUDY / path.name).config
        assert out["parameters"]["table"] == before["parameters"]["table"]
        assert out["command"] == before["command"]


def test_tuning_without_the_rate_sweeps_runs_is_one_line(tmp_path, capsys):
    from nlstudy.analysis import tuning

    (tmp_path / "wandb").mkdir()
    assert tuning.main(["--runs", str(tmp_path), "--out", str(tmp_path / "study")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no runs of the rate sweep 'reach_lr'" in err and "reach_lr.yaml" in err
