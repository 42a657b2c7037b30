"""Adapters: every private name of a library nlstudy relies on, behind one small module per library, each with
a test that fails loudly when the library changes it (tests/test_adapters_*.py).

    torch   torch's private names (the BatchNorm base class, a convolution's compute hook)
    sweeps  the sweeps package's engine and internal names (parameter classes, the grid's value hash, SweepRun aliases)
    wandb   wandb's private names (the warm worker's imports, wandb-core's inspector, a run's debug.log)
"""
