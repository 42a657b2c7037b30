#!/usr/bin/env bash
# The GPU recipe of the analysis study (the CPU study is sweeps/demo/study/, run by make analysis): study A
# ("reach") at full size, C2D ResNet-50 width 64 on 112-px frames (res3 14x14, res4 7x7), on one GPU.
# Not run where it was written (no GPU was lent); every step is an nlstudy command or the tested functions of
# nlstudy.analysis. Resumable: run it again and finished runs are not repeated.
#
#   sweeps/study/gpu.sh [RUNS_ROOT]      # default runs/study_gpu; from the repository root, .venv active
#
# 1. a C2D pilot, and its ERF squares at res5 on 500 val clips and 500 noise clips: check that the study's
#    distances (8, 36, 72 in reach_gpu_112.yaml) are inside, at the edge of and beyond them; edit if not
# 2. each arm's learning rate on validation (reach_gpu_lr.yaml, 18 runs)
# 3. the study at those rates (reach_gpu_112.yaml with the rates written in: reach_gpu_112.chosen.yaml, 90 runs)
# 4. the report (nlstudy report: the tables with their verdicts)
set -euo pipefail
ROOT="${1:-runs/study_gpu}"
HERE="$(dirname "$0")"
export WANDB_MODE="${WANDB_MODE:-offline}" WANDB_SILENT=true

if [ ! -e "$ROOT/pilot.done" ]; then
NLSTUDY_RUNS_DIR="$ROOT" nlstudy fit --config experiments/demo.yaml --trainer.accelerator=gpu --trainer.devices=1 \
    --trainer.precision=bf16-mixed --trainer.max_epochs=16 --data.batch_size=64 --data.num_workers=4 \
    --data.size=112 --data.frames=1 --data.synthetic.task=reach --data.synthetic.colours=2 \
    --data.synthetic.distance=36 --data.synthetic.train_samples=8192 --data.synthetic.val_samples=1024 \
    --data.synthetic.test_samples=1024 --model.backbone.depth=50 --model.backbone.width=64 \
    --model.backbone.init=msra --model.backbone.pool1=true --model.optim.lr=0.002 --seed_everything=20 \
    --table=reach_gpu_pilot --test_after_fit=false
touch "$ROOT/pilot.done"
fi
python - "$ROOT" <<'PY'
import sys
import torch
from nlstudy import keys
from nlstudy.analysis import load_run, study
from nlstudy.analysis.receptive_field import LUO_INPUTS, effective_receptive_field, erf_squares, noise_clips, theoretical_rf, unit_centre

runs = study.runs_frame(sys.argv[1], "reach_gpu_pilot")
model, config = load_run(runs["run_dir"].iloc[-1])
clips, _ = study.clips_for(config, "val", n=LUO_INPUTS)
res5 = theoretical_rf(model, clips.shape[1:])["res5"]
noise = noise_clips(LUO_INPUTS, clips.shape[1:], mean=float(clips.mean()), std=float(clips.std()))
for name, inputs in (("data", clips), ("noise", noise)):
    squares = erf_squares(effective_receptive_field(model, inputs, "res5")[0], unit_centre(res5)[1:])
    print(f"pilot C2D res5 ERF on {name}: " + ", ".join(f"{s.share:g} of the mass within {s.side} px" for s in squares))
print(f"theoretical RF of res5: {res5.rf[1]:g} px; the study's distances: 8, 36, 72 (reach_gpu_112.yaml)")
PY

nlstudy sweep "$HERE/reach_gpu_lr.yaml" --jobs 1 --runs-root "$ROOT"
python - "$ROOT" "$HERE" <<'PY'
import sys
from pathlib import Path
from nlstudy import keys
from nlstudy.analysis import study
from nlstudy.analysis.tuning import choose_by_arm, with_rates
from nlstudy.report.collect import read_runs

root, here = sys.argv[1], Path(sys.argv[2])
runs = read_runs(study.runs_frame(root, "reach_gpu_lr")["run_dir"]).runs
arm_keys = [keys.NONLOCAL_BLOCKS, keys.BLOCK, "model.backbone.arch"]
chosen = choose_by_arm(runs[runs["state"] == "finished"], arm_keys)
out = here / "reach_gpu_112.chosen.yaml"
out.write_text(with_rates((here / "reach_gpu_112.yaml").read_text(), chosen, arm_keys))
print(f"wrote {out}")
PY
nlstudy sweep "$HERE/reach_gpu_112.chosen.yaml" --jobs 1 --runs-root "$ROOT"
nlstudy report --runs "$ROOT" --out results/study_gpu
