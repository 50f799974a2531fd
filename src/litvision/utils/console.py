"""What a run prints (rank zero only): a one-screen start panel (the full config tree with
`verbose=true`), the events that change what is trained as they happen, and one table of results.

Lightning's own console is quietened for the run (`quiet_console`): its tips and environment
notices ("GPU available: ...", the `srun` hint, the litlogger tip) never reach the terminal, its
other info lines only with `verbose=true`; the libraries' Python warnings (Lightning's "number of
training batches is smaller than the logging interval", torchvision's...) are counted in one line at
the end of the run. Every one of them still goes to the run's log file (<run folder>/<command>.log),
as does the resolved config.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

_FIRST = ("data", "model", "trainer", "callbacks", "logger", "paths")
log = logging.getLogger(__name__)

#: Lightning's tips and notices that say nothing about this run (lightning 2.6): never on the
#: console, always in the log file. The `srun` hint is a warning on every machine with SLURM tools
#: (a login node included), the LeafSpec deprecation Lightning's own use of torch's pytree.
NOISE: tuple[str, ...] = (
    r"The `srun` command is available on your system but is not used",
    r"💡 Tip:",
    r"Trainer already configured with model summary callbacks",
    r"^(GPU|TPU|HPU|IPU) available: ",
    r"You are using a CUDA device .* that has Tensor Cores",
    r"isinstance\(treespec, LeafSpec\)` is deprecated",
    r"^LOCAL_RANK: \d+ - CUDA_VISIBLE_DEVICES",
    r"Loading `train_dataloader` to estimate number of stepping batches",
    # `litvision test` restores weights only; the training callbacks are left out on purpose.
    r"Be aware that when using `ckpt_path`, callbacks used to create the checkpoint need to be provided",
    # Lightning's MLFlowLogger on a new store: not news to the user (the store is in the run folder).
    r"Experiment with name .* not found\. Creating it\.",
)
# Third-party loggers whose console lines go to the run's log file for the length of a run; their
# errors still reach the console (route_to_log).
THIRD_PARTY_LOGGERS = ("mlflow", "alembic", "sqlalchemy", "huey")
_verbose = False
_NOISE = re.compile("|".join(f"(?:{p})" for p in NOISE))


def is_noise(message: str) -> bool:
    return bool(_NOISE.search(message))


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not is_noise(record.getMessage())


@contextmanager
def quiet_console(verbose: bool) -> Iterator[None]:
    """For the length of a run: Lightning's console handler shows warnings only (all its lines with
    `verbose`), never its tips; Python warnings that are tips go to the log file only, and so do the
    libraries' other warnings (one line at the end counts them), unless `verbose`."""
    handlers = [
        h
        for h in logging.getLogger("lightning").handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]
    drop = _DropNoise()
    levels = [h.level for h in handlers]
    for h in handlers:
        h.addFilter(drop)
        if not verbose:
            h.setLevel(max(h.level, logging.WARNING))
    show = warnings.showwarning
    to_file = logging.getLogger("py.warnings")
    from_libraries: list[str] = []

    def showwarning(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
        if is_noise(str(message)):
            to_file.info(text)  # the root logger's file handler only
            return
        to_file.warning(text)
        if not verbose and is_library_file(filename):
            from_libraries.append(library_name(filename))
            return
        show(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning
    global _verbose
    _verbose = verbose
    _routed.clear()
    route_to_log(*THIRD_PARTY_LOGGERS)
    try:
        yield
    finally:
        warnings.showwarning = show
        if from_libraries:
            _say_library_warnings(from_libraries)
        for h, level in zip(handlers, levels):
            h.removeFilter(drop)
            h.setLevel(level)
        _restore_routed()
        _verbose = False


_OWN_CODE = os.path.dirname(os.path.abspath(__file__)).rsplit(os.sep, 1)[0]  # src/litvision


def is_library_file(filename: str) -> bool:
    """A warning raised in an installed library (Lightning, torch, torchvision...), not in litvision
    or in the user's own code (a callback of theirs, a test helper): those reach the console."""
    path = os.path.abspath(filename)
    parts = path.split(os.sep)
    return not path.startswith(_OWN_CODE + os.sep) and ("site-packages" in parts or "dist-packages" in parts)


def library_name(filename: str) -> str:
    parts = os.path.abspath(filename).split(os.sep)
    where = max(i for i, p in enumerate(parts) if p in ("site-packages", "dist-packages"))
    return parts[where + 1].split(".")[0] if where + 1 < len(parts) else "?"


@rank_zero_only
def _say_library_warnings(names: list[str]) -> None:
    """One line for what the libraries warned about during the run: the warnings are in the log file."""
    files = [h.baseFilename for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    where = files[0] if files else "the run's log file"
    libraries = ", ".join(sorted(set(names)))
    said = (
        f"1 warning from {libraries} is" if len(names) == 1 else f"{len(names)} warnings from {libraries} are"
    )
    print(f"note: {said} in {where} (verbose=true shows them here)")


# (logger, its propagate flag, [(stream handler, its level)]) as they were before route_to_log.
_routed: list[tuple[logging.Logger, bool, list[tuple[logging.Handler, int]]]] = []


def route_to_log(*names: str) -> None:
    """Send these libraries' log lines to the run's log file (the root logger's file handler) and
    keep only their errors on the console (all their lines with `verbose`).

    MLflow installs its own stderr handler on import (`mlflow`, `alembic`...), with propagation off:
    its "Creating initial MLflow database tables..." reached the console and never the log file.
    Called again after a library is imported during the run (tracking/mlflow_logger.py): the
    handlers it installed then are routed too. Undone when the run's quiet_console ends."""
    for name in names:
        logger = logging.getLogger(name)
        streams = [
            h
            for h in logger.handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
        ]
        if any(entry[0] is logger for entry in _routed):
            # Routed already: only handlers installed since (a library imported during the run).
            known = {id(h) for entry in _routed if entry[0] is logger for h, _ in entry[2]}
            streams = [h for h in streams if id(h) not in known]
            if not streams and logger.propagate:
                continue
        _routed.append((logger, logger.propagate, [(h, h.level) for h in streams]))
        if not _verbose:
            for h in streams:
                h.setLevel(max(h.level, logging.ERROR))
        # The root logger holds the run's file handler (Hydra's job_logging, lifecycle/runner).
        logger.propagate = True


def _restore_routed() -> None:
    for logger, propagate, handlers in reversed(_routed):
        logger.propagate = propagate
        for h, level in handlers:
            h.setLevel(level)
    _routed.clear()


def config_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


@rank_zero_only
def print_config_tree(cfg: DictConfig) -> None:
    log.info("config\n%s", config_yaml(cfg))
    if not cfg.get("verbose"):
        return
    tree = Tree("config", guide_style="dim")
    keys = [k for k in _FIRST if k in cfg] + [k for k in cfg if k not in _FIRST]
    for key in keys:
        value = cfg[key]
        branch = tree.add(f"[bold]{key}[/]")
        if isinstance(value, DictConfig):
            branch.add(OmegaConf.to_yaml(value, resolve=True).rstrip() or "{}")
        else:
            branch.add(repr(value))
    Console().print(tree)


@rank_zero_only
def print_start(cfg: DictConfig, run_dir: str, overrides: list[str] | None = None) -> None:
    t = cfg.trainer
    from rich.markup import escape

    given = [o for o in overrides or [] if not o.startswith("hydra.")]
    lines = [
        f"[bold]experiment[/] {cfg.name}   [bold]seed[/] {cfg.seed}",
        f"[bold]data[/] {cfg.data._target_.rsplit('.', 1)[-1]}   [bold]model[/] "
        f"{cfg.model.get('net', {}).get('_target_', cfg.model._target_).rsplit('.', 1)[-1]}",
        f"[bold]trainer[/] {t.get('accelerator')} x{t.get('devices')}  nodes={t.get('num_nodes', 1)}  "
        f"precision={t.get('precision')}  max_epochs={t.get('max_epochs')}",
        *([f"[bold]overrides[/] {escape(' '.join(given))}"] if given else []),
        f"[bold]run folder[/] {escape(run_dir)}",
    ]
    if not cfg.get("verbose"):
        lines.append("[dim]full config: verbose=true, or config.yaml in the run folder[/]")
    text = "\n".join(lines)
    log.info("start\n%s", Text.from_markup(text).plain)
    Console().print(Panel(text, title=f"litvision {cfg.task_name}", expand=False))


# Detection's headline numbers first, the rest alphabetically.
_FIRST = ("map", "map_50", "map_75")


def _fmt(v: Any, name: str = "") -> str:
    if name.startswith(("map", "mar")) and v == -1:
        return "n/a"  # COCOeval's -1: no objects of that size (or class), not a score
    return "" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


@rank_zero_only
def print_summary(summary: dict[str, Any]) -> None:
    val = {k.split("/", 1)[-1]: v for k, v in summary.get("best_val", {}).items()}
    test = {k.split("/", 1)[-1]: v for k, v in summary.get("test", {}).items()}
    table = Table(title=f"{summary.get('experiment')}: best checkpoint", title_justify="left")
    table.add_column("metric", style="bold")
    if val:
        table.add_column("val", justify="right")
    table.add_column("test", justify="right")
    names = set(val) | set(test)
    for name in [n for n in _FIRST if n in names] + sorted(names - set(_FIRST)):
        row = [name] + ([_fmt(val.get(name), name)] if val else []) + [_fmt(test.get(name), name)]
        table.add_row(*row)
    console = Console(soft_wrap=True)  # paths on one line, whatever the terminal width
    console.print(table)
    if summary.get("best_checkpoint"):
        console.print(f"[bold]best checkpoint[/]: {summary['best_checkpoint']}")
    console.print(f"[bold]wall time[/]: {summary.get('wall_time_s', 0):.1f} s")
    # Last, where a user's eye (and `tail -1`) goes: everything else is in that folder.
    console.print(f"[bold]run folder[/]: {summary.get('run_dir')}")
