"""Datasets by name (catalog.py), one DataModule per task kind (classification.py, detection.py),
readers (datasets/), splits, samplers, checks and the device cache (pipeline/), transforms/ and the
tests' fixture makers (fixtures/). Old flat module paths stay importable (moved.py)."""

from litvision.data.moved import install as _install_moved

_install_moved()
