"""`python -m litvision.predict ckpt_path=<ckpt> input=<folder>` = `litvision predict` (and `make predict`)."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from litvision.cli import main

    main(["predict", *sys.argv[1:]])
