"""`nlstudy`: fit | validate | test (LightningCLI), sweep (local agent), report (tables), check (configs).

    nlstudy fit --config experiments/demo.yaml [--model.backbone.nonlocal_blocks=1-block ...]
    nlstudy sweep sweeps/demo/2a_pairwise.yaml
    nlstudy report --runs runs --out results/

The sweep and report commands import no torch; the training commands import it lazily.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import sys
import textwrap
import warnings

from nlstudy import choices
from nlstudy.choices import TRAIN_COMMANDS

USAGE = """usage: nlstudy {fit,validate,test,sweep,report,check} ...

  fit       train (and then test) one run: nlstudy fit --config experiments/demo.yaml [--key=value ...]
  validate  evaluate a checkpoint on the validation split (--ckpt_path)
  test      evaluate a checkpoint on the test split (--ckpt_path)
  sweep     run a wandb sweep file locally (offline) or through W&B (--online)
  report    rebuild the ablation tables and figures from logged runs
  check     validate training argument lists without training (used by sweep)

nlstudy <command> --help shows a command's options."""
COMMANDS = (*TRAIN_COMMANDS, "sweep", "report", "check")



HELP_WIDTH = 110  # columns of `nlstudy fit --help`
HELP_ALL = "--help-all"  # nlstudy fit --help-all: every option (LightningCLI's help, the Trainer's included)

# `nlstudy fit --help`: the keys most runs set, by section, each with its choices (by value) or what it means.
# tests/test_user_messages.py checks every key against the training CLI's parser and every choice list against
# the specs' Literal types, so this cannot drift from what the CLI accepts.
PRESETS = ", ".join(choices.PLACEMENTS)
HELP_SECTIONS: dict[str, dict[str, str]] = {
    "the network (model.backbone.*: the ablation axes)": {
        "model.backbone.arch": ", ".join(choices.ARCHS) + ", or torchvision:<name> ("
                               + ", ".join(a.split(":")[1] for a in choices.TORCHVISION_ARCHS) + ")",
        "model.backbone.depth": ", ".join(map(str, choices.DEPTHS)),
        "model.backbone.width": "channels after conv1 (64: the paper; the demo: 16)",
        "model.backbone.nonlocal_blocks": f"a preset ({PRESETS}) or a map such as "
                                          '\'{"res3": [1, 3], "res4": [1, 3, 5]}\' (after those 0-based residual blocks)',
        "model.backbone.block": ", ".join(choices.BLOCKS) + " (what is inserted: the block or a control)",
        "model.backbone.nl.pairwise": ", ".join(choices.PAIRWISE),
        "model.backbone.nl.mode": ", ".join(choices.MODES),
        "model.backbone.nl.subsample": "true (the paper's 1x2x2 max-pool), false, or a kernel such as 2x2x2",
        "model.backbone.nl.subsample_order": ", ".join(choices.SUBSAMPLE_ORDERS) + " (pool phi/g: the paper; pool x: "
                                             "the released code)",
        "model.backbone.nl.inter_ratio": "width of theta, phi, g relative to C (0.5: the paper)",
        "model.backbone.nl.scale": "true, false (1/sqrt(d) in the softmax: the released code)",
        "model.backbone.norm": ", ".join(choices.NORMS),
        "model.backbone.init": ", ".join(choices.INITS) + " (a fresh backbone's initialisation)",
        "model.backbone.pretrained": "a torchvision ResNet state-dict file to inflate ({depth} allowed)",
        "model.init_from": "a run (directory or id) whose final weights start this one",
    },
    "data (data.*)": {
        "data.dataset": ", ".join(choices.DATASETS),
        "data.frames": "frames per clip",
        "data.size": "frame side in pixels after cropping",
        "data.batch_size": "clips per batch (per device)",
        "data.video.root": "the dataset's folder on local disk (nothing downloads)",
        "data.synthetic.task": ", ".join(choices.TASKS) + " (the embedded task: patches in different frames, "
                               "touching, or in one frame data.synthetic.distance apart)",
    },
    "training (trainer.*, model.optim.*)": {
        "trainer.max_epochs": "epochs",
        "trainer.accelerator": "cpu, gpu, auto, ... (Lightning's)",
        "trainer.devices": "how many (or which) devices",
        "trainer.precision": "32-true, bf16-mixed, 16-mixed, ...",
        "model.optim.name": ", ".join(choices.OPTIMIZERS),
        "model.optim.lr": "learning rate",
        "model.optim.schedule": ", ".join(choices.SCHEDULES),
    },
}
TRAIN_USAGE = {
    "fit": "nlstudy fit --config FILE [--config FILE ...] [--KEY=VALUE ...]\n       nlstudy fit --resume RUN [--KEY=VALUE ...]",
    "validate": "nlstudy validate --config FILE --ckpt_path CHECKPOINT [--KEY=VALUE ...]",
    "test": "nlstudy test --config FILE --ckpt_path CHECKPOINT [--KEY=VALUE ...]",
}
TRAIN_WHAT = {
    "fit": "Train one run, validate it every epoch, then test the final model (--test_after_fit=false skips the\n"
           "test). The run is one wandb run (offline unless WANDB_MODE=online) under $NLSTUDY_RUNS_DIR (default\n"
           "runs/): its resolved config, metrics, weights (files/weights/) and checkpoint (files/checkpoints/).",
    "validate": "Evaluate a checkpoint on the validation split, logged as one wandb run.",
    "test": "Evaluate a checkpoint on the test split (multi-view where the data has it), logged as one wandb run.",
}
TRAIN_OPTIONS = {
    "-c, --config FILE": "a YAML config (experiments/*.yaml); several: later ones win",
    "--KEY=VALUE": "any key of the resolved configuration, dotted as below (--print_config lists them all)",
    "--print_config": "print the resolved configuration, every key with its value, and exit",
    "--seed_everything N": "the seed (0 in experiments/demo.yaml)",
    "--resume RUN": "fit: continue a run (its directory or id) from its checkpoint, under its wandb id",
    "--test_after_fit BOOL": "fit: test the final model in the same run (default true)",
    "--save_weights BOOL": "fit: keep files/weights/final.pt and best.pt for the analysis (default true)",
    "--save_checkpoints BOOL": "fit: keep files/checkpoints/last.ckpt for --resume (default true)",
    HELP_ALL: "every option with its type and default (LightningCLI's help: about 800 lines)",
}


def train_help(command: str) -> str:
    """`nlstudy fit --help` (validate, test): what the command does, its options and the keys most runs set,
    choices named by value; --help-all gives the full list."""
    width = 2 + max(len(k) for k in [*TRAIN_OPTIONS, *(f"--{k}" for s in HELP_SECTIONS.values() for k in s)])
    lines = [f"usage: {TRAIN_USAGE[command]}", "", TRAIN_WHAT[command], ""]
    if command == "fit":
        lines += ["  nlstudy fit --config experiments/demo.yaml                      # plain C2D on the demo task, about 20 s",
                  "  nlstudy fit --config experiments/demo.yaml --model.backbone.nonlocal_blocks=1-block", ""]
    entry = lambda name, text: textwrap.fill(text, HELP_WIDTH, initial_indent=f"  {name:<{width}}",  # noqa: E731
                                             subsequent_indent=" " * (width + 2), break_on_hyphens=False)
    lines.append("options:")
    lines += [entry(name, text) for name, text in TRAIN_OPTIONS.items()]
    for title, entries in HELP_SECTIONS.items():
        lines += ["", f"{title}:"]
        lines += [entry(f"--{key}", text) for key, text in entries.items()]
    lines += ["", f"nlstudy {command} {HELP_ALL} lists every option; nlstudy {command} --config FILE --print_config "
                  "shows every key's value."]
    return "\n".join(lines)


# Lightning's info lines a user cannot act on: the device lines (the config names the accelerator, and a GPU
# config on a machine without one fails in one line), a note before the schedule is built, and why fit stopped
# (the run's own lines say where it is: nlstudy.lit.callbacks.RunProgress)
LIGHTNING_NOISE = ("GPU available:", "TPU available:", "HPU available:", "Loading `train_dataloader` to estimate",
                   "`Trainer.fit` stopped:")


def _quiet() -> None:
    warnings.filterwarnings("ignore", message=".*allow_population_by_field_name.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
    warnings.filterwarnings("ignore", message=".*LightningCLI.s args parameter is intended.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory.*exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*predefined.*LitLogger.*")
    warnings.filterwarnings("ignore", message=".*`isinstance\\(treespec, LeafSpec\\)` is deprecated.*")
    # VideoClassifier's on_after_batch_transfer (the clips' memory order) is meant to be the module's
    warnings.filterwarnings("ignore", message=".*You have overridden `on_after_batch_transfer` in `LightningModule`.*")
    os.environ.setdefault("WANDB_SILENT", "true")
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage()  # an advert printed by every Trainer
        and not record.getMessage().startswith(LIGHTNING_NOISE))
    # "Seed set to N" (the seed is in the run's config): a bad value found after seeding stays one line on stderr
    logging.getLogger("lightning_fabric.utilities.seed").addFilter(
        lambda record: not record.getMessage().startswith("Seed set to"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _quiet()
    command = argv[0] if argv else ""
    if command == "sweep":
        from nlstudy.sweep.cli import main as sweep_main
        from nlstudy.sweep.cli import parser as sweep_parser

        if "--until-decided" in argv[1:] and sweep_parser().parse_known_args(argv[1:])[0].until_decided:
            from nlstudy.until_decided import main as until_decided_main

            return until_decided_main(argv[1:])
        return sweep_main(argv[1:])
    if command == "report":
        from nlstudy.report.cli import main as report_main

        write_missing_plans(argv[1:])
        return report_main(argv[1:])
    if command == "check":
        from nlstudy.lit.check import check_main

        return check_main(argv[1:])
    if command in TRAIN_COMMANDS:
        if any(a in ("-h", "--help") for a in argv[1:]):
            print(train_help(command))
            return 0
        from nlstudy.lit.entry import train_main

        return train_main([a if a != HELP_ALL else "--help" for a in argv])  # --help-all: LightningCLI's own help
    if command in ("-h", "--help"):
        print(USAGE)
        return 0
    print(unknown_command(command), file=sys.stderr)
    print(USAGE, file=sys.stderr)
    return 2


def write_missing_plans(report_argv: list[str]) -> None:
    """Before `nlstudy report --runs DIR`: write the plan.json of each sweep under DIR that has none (a runs root
    made before the sweep wrote plans), so the report, which reads only the sweep's records, marks the planned
    runs that never started as it always did. The sweep layer computes it (nlstudy.sweep.plan); where it cannot
    be written (a read-only runs root), the report says the plan is unknown."""
    runs = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    runs.add_argument("--runs")
    try:
        root = runs.parse_known_args(report_argv)[0].runs
    except argparse.ArgumentError:  # `--runs` without its folder: the report's own parser says so
        return
    if root is not None:  # a folder that is not there has no sweeps: the report says what is wrong
        from nlstudy.sweep.plan import write_missing

        write_missing(root)


def unknown_command(command: str) -> str:
    """The line for a missing or unknown command: which one, the closest command, the valid ones."""
    if not command:
        return "nlstudy: error: no command given; one of: " + ", ".join(COMMANDS)
    close = difflib.get_close_matches(command, COMMANDS, n=1, cutoff=0.6)
    guess = f" (did you mean {close[0]!r}?)" if close else ""
    return f"nlstudy: error: unknown command {command!r}{guess}; one of: " + ", ".join(COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
