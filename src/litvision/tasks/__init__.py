"""LightningModules: the loss, metrics, logging and optimizers around a model."""
