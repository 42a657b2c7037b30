#!/bin/bash
# One sweep agent per SLURM array task: a sweep file's runs spread over as many GPU nodes as the array has.
#
#   online (W&B's server decides which run each agent gets; needs network on the nodes):
#       .venv/bin/wandb sweep --project nlstudy sweeps/2c_blocks.yaml      # prints the sweep id ENTITY/nlstudy/ID
#       MODE=online SWEEP_ID=ENTITY/nlstudy/ID sbatch --array=0-7 experiments/slurm_sweep.sh
#   offline (the local agent; every task reads and writes one runs root on a shared filesystem):
#       MODE=offline SWEEP=sweeps/2c_blocks.yaml RUNS_ROOT=/shared/nlstudy/runs sbatch --array=0-7 experiments/slurm_sweep.sh
#
# Offline, the agents coordinate through files under $RUNS_ROOT/sweeps/<sweep id>/: each proposal is made
# under an exclusive flock(2) on its `lock` file, so the filesystem must honour flock across machines
# (NFSv4, or NFSv3 with lockd; Lustre mounted with -o flock; GPFS; BeeGFS with global file locks). A local
# disk or a filesystem mounted with `nolock`/`localflock` does NOT: two nodes could then run the same
# configuration. Nodes may mount the root under different paths (the lock is on the file, not its path;
# tests/test_sweep_agent.py checks it through a symlink). An agent that dies is noticed by the others
# after its heartbeat is 10 minutes old; its run is marked and re-run by the next agent. Runs are wandb
# offline runs: `wandb sync $RUNS_ROOT/wandb/offline-run-*` from a node with network, then
# `nlstudy report --wandb ENTITY/PROJECT` (or `nlstudy report --runs $RUNS_ROOT` straight away).
#
#SBATCH --job-name=nlstudy-sweep
#SBATCH --nodes=1
#SBATCH --gres=gpu:8                 # one node of 8 GPUs per agent: each run uses them all (Lightning DDP)
#SBATCH --ntasks-per-node=1          # the agent; the run it starts spawns one process per GPU
#SBATCH --cpus-per-task=64           # 8 decoding workers per GPU (data.num_workers in the config)
#SBATCH --time=72:00:00
#SBATCH --output=slurm-%A_%a.out

set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
MODE=${MODE:-offline}
if [ "$MODE" = online ]; then
    : "${SWEEP_ID:?set SWEEP_ID=entity/project/id (from wandb sweep or nlstudy sweep --online)}"
    exec .venv/bin/wandb agent --count "${RUNS_PER_TASK:-1}" "$SWEEP_ID"
fi
: "${SWEEP:?set SWEEP=sweeps/<table>.yaml}"
: "${RUNS_ROOT:?set RUNS_ROOT to a folder on the shared filesystem}"
# one agent per task, one run at a time on this node's GPUs; --count bounds the runs this task takes
exec .venv/bin/nlstudy sweep "$SWEEP" --runs-root "$RUNS_ROOT" --jobs 1 ${RUNS_PER_TASK:+--count "$RUNS_PER_TASK"}
