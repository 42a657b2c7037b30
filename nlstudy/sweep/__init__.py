"""Sweeps: wandb sweep files run by a local agent (offline) or by W&B's own agents (--online).

    spec     load a sweep file and validate it (schema, method, macros, engine)
    check    every parameter is a real training-CLI key with an allowed value (`nlstudy check`)
    command  a run's command line, expanded exactly as `wandb agent` does
    engine   the `sweeps` package (grid / random / bayes / hyperband), as the W&B server uses it
    state    a sweep's state on disk under <runs root>/sweeps/<sweep id>/, shared by its agents
    agent    claim a run, launch it offline, watch it, record it
    online   W&B's server and agents
    cli      `nlstudy sweep`

Nothing here imports torch: the training CLI is only ever a subprocess.
"""
