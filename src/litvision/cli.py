"""Command-line entry points: `litvision train|eval|list` (also `litvision-train`, ...).

    python -m litvision.train experiment=digits_cnn trainer.max_epochs=5   # = litvision train ...
    litvision train ckpt_path=runs/digits_cnn/<stamp>/checkpoints/last.ckpt   # resume in place
    litvision eval experiment=digits_cnn ckpt_path=runs/digits_cnn/<stamp>/checkpoints/last.ckpt
    litvision list

Bad input (unknown experiment, misspelled key, missing checkpoint) is rejected here,
before Hydra creates a run folder and before torch is imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from litvision.errors import UserError

_HYDRA_FLAGS = ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc")


def _value(args: list[str], key: str) -> str | None:
    for a in reversed(args):
        for prefix in (f"{key}=", f"+{key}=", f"++{key}="):
            if a.startswith(prefix):
                return a[len(prefix) :]
    return None


def resume_dir(ckpt_path: str) -> Path | None:
    """The run folder a checkpoint belongs to (`<run>/checkpoints/x.ckpt`), if it is one."""
    run = Path(ckpt_path).resolve().parent.parent
    return run if (run / ".hydra").is_dir() or (run / "config.yaml").is_file() else None


def prepare(kind: str, args: list[str]) -> list[str]:
    """Validate a train/eval command line and return the Hydra overrides to run with."""
    from litvision.config import check_experiment, check_overrides, project_root

    os.environ.setdefault("LITVISION_ROOT", str(project_root()))
    if any(a in _HYDRA_FLAGS for a in args):
        return args
    multirun = "-m" in args or "--multirun" in args
    exp = _value(args, "experiment")
    if exp is not None:
        check_experiment(exp)
    ckpt = _value(args, "ckpt_path")
    if ckpt in (None, "", "null"):
        if kind == "eval":
            raise UserError(
                "eval needs a checkpoint: `make eval EXP=<name> CKPT=<path/to.ckpt>` (ckpt_path=...)."
            )
        ckpt = None
    elif not Path(ckpt).is_file():
        raise UserError(
            f"Checkpoint not found: {ckpt}. Pass an existing .ckpt file, "
            "e.g. runs/<experiment>/<timestamp>/checkpoints/last.ckpt."
        )
    args = list(args)
    if kind == "train" and ckpt and not multirun and _value(args, "hydra.run.dir") is None:
        run = resume_dir(ckpt)
        if run is not None:
            # Resuming continues the interrupted run's folder (and logs) instead of starting a new one.
            args.append(f"hydra.run.dir={run}")
    if not multirun:
        check_overrides([a for a in args if not a.startswith("-")], config_name=kind)
        from litvision.scale import check_hardware_overrides

        check_hardware_overrides([a for a in args if not a.startswith("-")], config_name=kind)
    return args


def _run_hydra(kind: str, argv: list[str] | None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        args = prepare(kind, args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    # Hydra (and Lightning's DDP launcher, which re-runs this command) read sys.argv.
    sys.argv = [sys.argv[0], *args]
    if kind == "train":
        from litvision.train import main
    else:
        from litvision.eval import main
    main()


def train(argv: list[str] | None = None) -> None:
    """Train (and test) an experiment."""
    _run_hydra("train", argv)


def evaluate(argv: list[str] | None = None) -> None:
    """Test a checkpoint with an experiment's data."""
    _run_hydra("eval", argv)


def list_experiments(argv: list[str] | None = None) -> None:
    """Print every experiment with its one-line description."""
    from rich.console import Console
    from rich.table import Table

    from litvision.config import experiment_descriptions

    table = Table(title="litvision experiments  (make train EXP=<name>)", title_justify="left")
    table.add_column("experiment", style="bold cyan", no_wrap=True)
    table.add_column("description")
    for name, desc in experiment_descriptions().items():
        table.add_row(name, desc)
    Console().print(table)


_HYDRA_APPS = {"train": "litvision.train", "eval": "litvision.eval"}

COMMANDS: dict[str, Callable[[list[str] | None], None]] = {
    "train": train,
    "eval": evaluate,
    "list": list_experiments,
}


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        names = " | ".join(COMMANDS)
        print(f"usage: litvision {{{names}}} [hydra overrides]", file=sys.stderr)
        sys.exit(0 if args and args[0] in ("-h", "--help") else 2)
    cmd, rest = args[0], args[1:]
    if cmd in _HYDRA_APPS:
        # Hydra apps run as their own module: Lightning's DDP launcher re-runs
        # `python -m <module> <overrides>` in each worker, which must not see a subcommand.
        os.execv(sys.executable, [sys.executable, "-m", _HYDRA_APPS[cmd], *rest])
    sys.argv = [f"{sys.argv[0]} {cmd}", *rest]
    try:
        COMMANDS[cmd](rest)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
