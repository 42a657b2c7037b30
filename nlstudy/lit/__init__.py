"""Training: the LightningModule and the callbacks that write a run's record."""
