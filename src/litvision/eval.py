"""`python -m litvision.eval ckpt_path=<ckpt> [experiment=<name>]` = `litvision test` (and `make eval`).

Kept as a module for scripts and for Lightning's DDP launcher, which re-runs it in each process.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from litvision.cli import main

    main(["test", *sys.argv[1:]])
