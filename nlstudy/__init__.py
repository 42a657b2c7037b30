"""nlstudy: ablation-study runner for non-local neural networks (Wang et al., CVPR 2018).

`nlstudy.train(config, overrides, runs_dir=...)` runs one training run in this process (see
`nlstudy.lit.entry.train`; the core it calls, a plain function of the resolved configuration, is
`nlstudy.lit.train.run`); it is imported on first use, so `import nlstudy` stays free of torch for
the sweep and report layers.

Layers (an arrow: may import; tests/test_architecture.py checks it on every import, and that no module
imports another in a circle):

    core      keys (run-record names and files, env names, flatten, find_run), choices (the
              vocabulary), registry (lookup, the Choice record), errors (UsageError, one_line),
              processes (is a pid alive), provenance (git commit, versions, host),
              warm (the client of a warm-started run; the worker is lit.worker),
              files (read what people wrote in one line of error; write whole or not at all),
              interrupts (SIGINT, SIGTERM, SIGHUP stop a command as Ctrl-C does),
              records (a local sweep's files as the sweep writes and the report reads them: plan.json,
              run.json, config keys, is a record's agent alive)
                                                                               <- everything; no torch
    adapters  one module per library holding the private names nlstudy uses
              (adapters.torch: the BatchNorm base class, a conv's compute hook;
              adapters.wandb: the warm imports, wandb-core's inspector, debug.log;
              adapters.sweeps: the engine, its parameter classes and grid hash;
              adapters.lightning: the hyperparameters LightningCLI gives a module) <- core
    blocks    NonLocalBlock, comparison blocks                                 <- adapters, core
    models    VideoResNet C2D/I3D, placement, ImageNet inflation, the torchvision
              plug-in, model facts                                             <- blocks, adapters, core
              (models.stage_keys: VideoResNet's saved names, res3.1 for stages.res3.1)
    data      synthetic task, video/image datasets, ClipDataModule             <- core
    lit       VideoClassifier, callbacks, the training CLI, train()            <- models, data, blocks, adapters, core
              (lit.train: the core, run(resolved config) -> TrainResult; lit.cli: NLStudyCLI, the
               LightningCLI parser; lit.entry: nlstudy fit|validate|test and nlstudy.train();
               lit.record: run identity, logger, config logging; lit.resume: --resume's config and
               checkpoint; lit.ending: failed and interrupted runs; lit.check: nlstudy check, warm_up;
               lit.messages: jsonargparse's errors reworded; lit.machine: the Trainer settings checked
               against this machine; lit.optim: OptimSpec, the optimiser and schedule records)
    analysis  reload runs, attention, query dependence, ERF, notebook runner   <- models, data, blocks, report, adapters, core
                                                                                  (never lit: no Trainer)
              (analysis.study: the notebooks' glue; analysis.evidence: where the embedded task's patches sit)
    sweep     sweep files, the `sweeps` engine, the local agent (it writes
              each sweep's plan.json and run records: core records)            <- adapters.sweeps, core; no torch
    report    collect runs -> tables -> comparisons -> one family (Holm) -> verdicts
              -> md/tex/csv/figures, findings; what a sweep planned and ran
              from its records (core records), never from sweep                <- adapters.wandb, core; no torch
              (report.schema: the runs and history frames; report.offline: the run directories' reader,
               with report.wandb_log (a log's records), report.logcache, report.runstate (running, crashed...),
               report.resumed (a resumed run's parts made one); report.standins: stand-ins filed;
               report.wandb_api: the W&B API reader)
    until_decided  `nlstudy sweep --until-decided`: seeds added to the undecided
              rows, in rounds, by the report's verdicts                        <- sweep, report, core; no torch
    cli       `nlstudy <command>`: dispatches to lit, sweep, report,
              until_decided (torch only inside fit/validate/test); before a report,
              the sweep writes the plans a runs root made before plans lacks

Where a change goes:
- a new choice of an existing axis (a pairwise function, an architecture, a placement preset, a dataset,
  an optimiser): its name in `nlstudy/choices.py` plus its record in the registry that builds it (choices.py
  lists which); tests/test_choices.py checks the two agree.
- a new ablation axis (a new knob): a field with a comment on the spec that owns it (`NLOptions` /
  `BackboneSpec` in models, `SyntheticSpec` / `VideoSpec` in data, `OptimSpec` in lit); the CLI, the
  sweep files and the run record pick it up as its dotted key (`model.backbone.nl.<field>`). Name it in
  `nlstudy/keys.py` if the report or notebooks refer to it, and register a table for it in
  `nlstudy/report/specs.py` (a sweep with an unregistered `table` still gets a generic table).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "train":
        from nlstudy.lit.entry import train

        return train
    if name == "TrainResult":
        from nlstudy.lit.train import TrainResult

        return TrainResult
    raise AttributeError(f"module 'nlstudy' has no attribute {name!r}")
