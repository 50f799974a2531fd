"""`python -m litvision.train <overrides>` = `litvision fit <overrides>` (and `make train`).

    python -m litvision.train experiment=digits_cnn trainer.max_epochs=5
    python -m litvision.train resume=runs/digits_cnn/<stamp>
    python -m litvision.train --multirun experiment=digits_cnn seed=1,2,3     # = litvision sweep

Kept as a module because W&B sweep agents, SLURM jobs and Lightning's DDP launcher (which re-runs
`python -m <this module> <overrides>` in each extra process) call it.
"""

from __future__ import annotations

import sys
from typing import Any

from omegaconf import DictConfig


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit a config composed elsewhere (tests, notebooks) in its `paths.output_dir`; returns the summary."""
    from litvision.commands.fit import COMMAND as FIT
    from litvision.lifecycle.runner import execute, plan_for_config

    return execute(plan_for_config(FIT, cfg))


if __name__ == "__main__":
    if "-m" in sys.argv[1:] or "--multirun" in sys.argv[1:]:
        from litvision.commands.sweep import main

        folder = main()
        if folder is not None:  # the sweep ends with the comparison of its runs
            from litvision.compare import print_sweep_comparison
            from litvision.errors import guarded

            guarded(print_sweep_comparison, folder)
    else:
        from litvision.cli import main

        main(["fit", *sys.argv[1:]])
