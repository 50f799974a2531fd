"""LightningDataModules, dataset readers, transforms, samplers and fixture makers."""
