"""litvision: PyTorch Lightning + Hydra experiments for image classification and detection.

Importing the package is cheap on purpose (no torch): the CLI lists experiments
and validates overrides before paying for the heavy imports.
"""

__version__ = "0.1.0"
