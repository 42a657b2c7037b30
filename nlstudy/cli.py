"""`nlstudy`: fit | validate | test (LightningCLI), sweep (local agent), report (tables), check (configs).

    nlstudy fit --config experiments/demo.yaml [--model.backbone.nonlocal_blocks=1-block ...]
    nlstudy sweep sweeps/demo/2a_pairwise.yaml
    nlstudy report --runs runs --out results/

The sweep and report commands import no torch; the training commands import it lazily.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

from nlstudy.choices import TRAIN_COMMANDS

USAGE = """usage: nlstudy {fit,validate,test,sweep,report,check} ...

  fit       train (and then test) one run: nlstudy fit --config experiments/demo.yaml [--key=value ...]
  validate  evaluate a checkpoint on the validation split (--ckpt_path)
  test      evaluate a checkpoint on the test split (--ckpt_path)
  sweep     run a wandb sweep file locally (offline) or through W&B (--online)
  report    rebuild the ablation tables and figures from logged runs
  check     validate training argument lists without training (used by sweep)

nlstudy <command> --help shows a command's options."""



def _quiet() -> None:
    warnings.filterwarnings("ignore", message=".*allow_population_by_field_name.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
    warnings.filterwarnings("ignore", message=".*LightningCLI.s args parameter is intended.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory.*exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*predefined.*LitLogger.*")
    warnings.filterwarnings("ignore", message=".*`isinstance\\(treespec, LeafSpec\\)` is deprecated.*")
    os.environ.setdefault("WANDB_SILENT", "true")
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage())  # an advert printed by every Trainer
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

        return report_main(argv[1:])
    if command == "check":
        from nlstudy.lit.cli import check_main

        return check_main(argv[1:])
    if command in TRAIN_COMMANDS:
        from nlstudy.lit.cli import train_main

        return train_main(argv)
    print(USAGE, file=sys.stderr if command not in ("-h", "--help") else sys.stdout)
    return 0 if command in ("-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main())
