"""`litvision <command>`: one CLI, one run lifecycle, one error boundary.

    litvision fit experiment=digits_cnn trainer.max_epochs=5       # = make train / python -m litvision.train
    litvision fit resume=runs/digits_cnn/<stamp>                   # continue an interrupted run
    litvision test ckpt_path=runs/digits_cnn/<stamp>/checkpoints/last.ckpt
    litvision predict ckpt_path=<ckpt> input=<folder of images>
    litvision list | compare | sweep | submit                      # `litvision <command> --help`

Every user error, raised anywhere (also deep inside Hydra's `instantiate`), ends here as one line
on stderr and exit code 2; bugs keep their stack trace. Nothing heavy is imported before a
command is chosen, so `litvision --help` and refusals are quick.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litvision.errors import UserError, guarded

if TYPE_CHECKING:
    from litvision.lifecycle.spec import Command

# -- run commands (fit, test, predict, tune, export): their help ---------------------------------------------------------------
_HELP = {
    "fit": """usage: litvision fit [key=value ...] [resume=<run folder>] [--cfg]

Train an experiment, then test its best checkpoint. Writes runs/<experiment>/<stamp>/ with
config.yaml, checkpoints/ (best and last), logs and summary.json.

  litvision fit experiment=resnet50_flowers data.root=/data/flower_photos trainer=gpu
  litvision fit resume=runs/digits_cnn/<stamp>                    interrupted run, its own config
  litvision fit resume=runs/digits_cnn/<stamp> trainer.max_epochs=60   extend: the LR schedule is
                                                                  re-planned to the new end
  litvision fit resume=<finished run> trainer.max_epochs=60      new run from its last.ckpt

On resume only trainer.max_epochs/max_steps/devices/num_nodes/accelerator/strategy, data.num_workers,
callbacks.early_stopping.*, logger.* and paths.* may change. An extension (more epochs or steps, or
a finished run) must train more than is done; early stopping counts again from 0 with the given
patience, and the best checkpoint is the best of the run and the one it extends.
Experiments: `litvision list`. --cfg prints the composed config.""",
    "test": """usage: litvision test ckpt_path=<file.ckpt> [experiment=<name>] [key=value ...] [--cfg]

Test a checkpoint on its experiment's test split, in a run folder of its own
(runs/<experiment>/eval/<stamp>/). A checkpoint inside a run folder brings that run's config.""",
    "tune": """usage: litvision tune [experiment=<name>] [key=value ...] [+tune.max_trials=3 ...]

Lightning's batch-size finder, then its LR finder, on one device (DDP is refused). Writes
runs/<experiment>/tune/<stamp>/ with lr_find.png and summary.json (the suggested
data.batch_size and model.optimizer.lr as overrides to paste into `litvision fit`).""",
    "export": """usage: litvision export <run folder or .ckpt> [--format onnx|torchscript|exported_program]
                        [--out-dir <folder>] [--force] [--image-size H|HxW] [--batch-size N] [--cfg]
       litvision export source=<run folder or .ckpt> [format=...] [out_dir=...] [force=true] ...

Export a trained checkpoint (a run folder: its best checkpoint) and check the exported model against
PyTorch. Writes runs/<experiment>/export/<stamp>/ (or --out-dir: a new or empty folder; a non-empty
one only with --force, never a run folder) holding model.<ext> and export.json: the preprocessing
from an image file to the input, the input and output shapes, each parity check with its largest
difference and tolerance, and every file written. The keys are configs/export.yaml's.

  litvision export runs/digits_cnn/<stamp>                          ONNX (onnxruntime parity)
  litvision export runs/yolov1_shapes/<stamp> --format torchscript
  litvision export runs/digits_cnn/<stamp> --out-dir deploy/digits --image-size 8""",
    "predict": """usage: litvision predict ckpt_path=<file.ckpt> input=<folder> [key=value ...]

Classify or detect every image in a folder with a trained checkpoint; writes
runs/<experiment>/predict/<stamp>/ (see configs/predict.yaml for the keys).""",
}


def run_command(name: str, args: list[str]) -> None:
    """A run command through the lifecycle: plan (compose, check; no folder yet), then execute."""
    if any(a in ("-h", "--help") for a in args):
        print(COMMANDS[name].help)
        return
    from litvision.config import project_root
    from litvision.lifecycle.runner import execute, plan_run

    os.environ.setdefault("LITVISION_ROOT", str(project_root()))
    command = lifecycle_command(name)
    if command.flags is not None:
        args = command.flags(args)
    show_cfg = "--cfg" in args
    unknown = [a for a in args if a.startswith("-") and a != "--cfg"]
    if unknown:
        raise UserError(f"Unknown option {unknown[0]} for `litvision {name}`: see `litvision {name} --help`.")
    plan = plan_run(command, [a for a in args if a != "--cfg"])
    if show_cfg:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(plan.cfg))
        return
    execute(plan)


def run(name: str, args: list[str]) -> dict[str, Any]:
    """`litvision <name> <args>` in this process (tests, notebooks); returns the run's summary
    (export: what export.json holds)."""
    from litvision.lifecycle.runner import execute, plan_run

    command = lifecycle_command(name)
    return execute(plan_run(command, command.flags(args) if command.flags else args))


# -- tools ------------------------------------------------------------------------------------------
_LIST_USAGE = """usage: litvision list [models [<model>] | datasets]

  litvision list                          every experiment with its one-line description
  litvision list models                   every model: task, default weights, input size, mean/std
  litvision list models torchvision/resnet50   the weights a model can start from, each described
  litvision list datasets                 every dataset in the data catalog: kind, classes, size, mean/std"""


def list_experiments(args: list[str]) -> None:
    """Print every experiment with its one-line description (`list models`: every model; `list datasets`:
    every registered dataset)."""
    if args[:1] == ["models"] and not any(a in ("-h", "--help") for a in args):
        list_models(args[1:])
        return
    if args == ["datasets"]:
        return list_datasets()
    if args:
        print(_LIST_USAGE)
        return
    from rich.console import Console
    from rich.table import Table

    from litvision.config import experiment_descriptions

    table = Table(title="litvision experiments  (litvision fit experiment=<name>)", title_justify="left")
    table.add_column("experiment", style="bold cyan", no_wrap=True)
    table.add_column("description")
    for name, desc in experiment_descriptions().items():
        table.add_row(name, desc)
    Console().print(table)


def list_models(args: list[str]) -> None:
    """The model catalog (litvision.models.registry); with a name, the weights that model can load."""
    if len(args) > 1:
        raise UserError(f"`litvision list models` takes at most one model name, not {' '.join(args)}.")
    from rich.console import Console
    from rich.table import Table

    from litvision.models import registry

    if not args:
        table = Table(
            title="litvision models  (litvision list models <name>: its weights)", title_justify="left"
        )
        for col in ("model", "task", "default weights", "input size", "mean / std", "description"):
            table.add_column(col, style="bold cyan" if col == "model" else None, no_wrap=col == "model")
        for row in registry.catalog_rows():
            table.add_row(*row)
        Console(width=max(Console().width, 160)).print(table)
        return
    entry = registry.get_model(args[0])
    specs = registry.weights_of(entry)
    table = Table(title=f"{entry.name}: {entry.task}, {entry.target}", title_justify="left")
    for col in ("weights", "source", "input size", "interpolation", "mean / std", "classes"):
        table.add_column(col, style="bold cyan" if col == "weights" else None, overflow="fold")
    for spec in specs or [registry.weights_spec(entry)]:
        size, stats = registry.spec_columns(spec)
        classes = str(spec.num_classes) if spec.num_classes else "-"
        table.add_row(spec.name, spec.ref or spec.source, size, spec.interpolation or "-", stats, classes)
    Console(width=max(Console().width, 140)).print(table)


def list_datasets() -> None:
    """Every dataset in the data catalog: its DataModule and what it is (kind, classes, size, mean/std)."""
    from rich.console import Console
    from rich.table import Table

    from litvision.data.catalog import datasets

    table = Table(title="litvision datasets  (litvision fit data=<name>)", title_justify="left")
    for column in ("dataset", "kind", "classes", "channels", "size", "mean / std", "DataModule"):
        table.add_column(
            column, style="bold cyan" if column == "dataset" else None, no_wrap=column == "dataset"
        )
    for name, spec in datasets().items():
        stats = f"{list(spec.mean)} / {list(spec.std)}" if spec.mean and spec.std else "-"
        table.add_row(
            name,
            spec.kind,
            str(spec.num_classes or "from data"),
            str(spec.channels),
            f"{spec.native_size} px" if spec.native_size else "any",
            stats,
            spec.datamodule.rsplit(".", 1)[-1],
        )
    Console().print(table)


def compare(args: list[str]) -> None:
    from litvision.compare import main as compare_main

    compare_main(args)


def sweep(args: list[str]) -> None:
    """Hydra multirun in its own process: Lightning's DDP launcher re-runs `python -m litvision.train`."""
    if any(a in ("-h", "--help") for a in args):
        print(
            "usage: litvision sweep experiment=<name> key=a,b,c [hparams_search=<name>] [hydra/launcher=...]\n"
            "       litvision sweep resume=<sweep folder> [hydra.sweeper.n_trials=<total>]\n\n"
            "A Hydra multirun: one run folder per job under runs/<experiment>/multirun/sweep-<id>/, the id\n"
            "a hash of the overrides. The same command again resumes the sweep: finished jobs are skipped,\n"
            "interrupted ones continue from their last.ckpt, the others run. `hparams_search=digits_cnn_optuna`\n"
            "runs an Optuna search; its study is kept in the sweep folder and n_trials counts all its trials."
        )
        return
    os.execv(sys.executable, [sys.executable, "-m", "litvision.train", "--multirun", *args])


def submit(args: list[str]) -> None:
    from litvision.submit import main as submit_main

    code = submit_main(args)
    if code:
        raise SystemExit(code)


# The run commands' lifecycle specs (litvision.lifecycle.spec.Command), each declared beside its
# runner and imported only when that command runs: `litvision --help` imports none of them.
def _fit() -> Command:
    from litvision.commands.fit import COMMAND

    return COMMAND


def _test() -> Command:
    from litvision.commands.test import COMMAND

    return COMMAND


def _predict() -> Command:
    from litvision.commands.predict import COMMAND

    return COMMAND


def _export() -> Command:
    from litvision.commands.export import COMMAND

    return COMMAND


def _tune() -> Command:
    from litvision.tuning import COMMAND

    return COMMAND


@dataclass(frozen=True)
class CliCommand:
    summary: str
    #: A tool: called with the command line's arguments (it answers its own --help).
    run: Callable[[list[str]], None] | None = None
    #: A run command: its lifecycle spec (run folder, entry config, runner, checks).
    command: Callable[[], Command] | None = None
    #: A run command's `--help`.
    help: str = ""


#: The one table of commands: `litvision <name>`, its line in `litvision --help`, its `--help`, and
#: what runs it (the lifecycle, for the commands that own a run folder).
COMMANDS: dict[str, CliCommand] = {
    "fit": CliCommand("train an experiment, then test its best checkpoint", command=_fit, help=_HELP["fit"]),
    "test": CliCommand("test a checkpoint on its experiment's test split", command=_test, help=_HELP["test"]),
    "predict": CliCommand("classify/detect a folder of images", command=_predict, help=_HELP["predict"]),
    "tune": CliCommand("LR and batch-size finders on one device", command=_tune, help=_HELP["tune"]),
    "export": CliCommand(
        "ONNX / TorchScript / ExportedProgram with a parity check", command=_export, help=_HELP["export"]
    ),
    "list": CliCommand("every experiment with its description (`list models`: models)", run=list_experiments),
    "compare": CliCommand("table and curves of runs (make compare)", run=compare),
    "sweep": CliCommand("a Hydra grid or Optuna sweep (make sweep)", run=sweep),
    "submit": CliCommand("send an experiment to SLURM via submitit (make submit)", run=submit),
}
ALIASES = {"train": "fit", "eval": "test"}


def lifecycle_command(name: str) -> Command:
    """The lifecycle spec of run command `name` (fit, test, predict, tune, export)."""
    make = COMMANDS[name].command
    if make is None:
        raise ValueError(f"`litvision {name}` does not run through the lifecycle")
    return make()


def usage() -> str:
    lines = ["usage: litvision <command> [args]   (litvision <command> --help)", ""]
    lines += [f"  {name:<9} {c.summary}" for name, c in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    try:
        _main(argv)
    except BrokenPipeError:
        # `litvision list | head`: the reader stopped reading, which is not an error to show. Python
        # would flush stdout again at exit and fail the same way: point it at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def _main(argv: list[str] | None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if args else sys.stderr)
        sys.exit(0 if args else 2)
    name = ALIASES.get(args[0], args[0])
    if name not in COMMANDS:
        print(f"error: unknown command '{args[0]}'.\n{usage()}", file=sys.stderr)
        sys.exit(2)
    entry = COMMANDS[name]
    if entry.run is not None:
        guarded(entry.run, args[1:])
    else:
        guarded(run_command, name, args[1:])


# Console scripts kept from the first release (litvision-train, litvision-eval, litvision-list).
def train(argv: list[str] | None = None) -> None:
    main(["fit", *(sys.argv[1:] if argv is None else argv)])


def evaluate(argv: list[str] | None = None) -> None:
    main(["test", *(sys.argv[1:] if argv is None else argv)])


def list_main(argv: list[str] | None = None) -> None:
    main(["list", *(sys.argv[1:] if argv is None else argv)])
