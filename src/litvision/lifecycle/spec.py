"""What the lifecycle is handed and what it plans: a command's spec (`Command`, declared beside each
command's runner), an artifact command's folder (`ArtifactFolder`), and the plan made before any
folder exists (`Plan`). litvision.lifecycle.runner plans and executes them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from omegaconf import DictConfig

if TYPE_CHECKING:
    from litvision.lifecycle.session import Session


@dataclass(frozen=True)
class Command:
    """What the lifecycle needs to know of a run command. Each command module declares its own
    (`litvision.commands.fit.COMMAND`, ...) beside its runner; the CLI's one table (`litvision.cli`)
    lists them. The lifecycle imports no command: it is handed one."""

    name: str
    #: Entry config in configs/ (train.yaml, eval.yaml, predict.yaml); also the run's log file name.
    config_name: str
    #: Takes the Session and returns the command's summary fields.
    runner: Callable[[Session], dict[str, Any]]
    needs_checkpoint: bool = False
    #: hydra.run.dir when the entry config's hydra group does not set it.
    run_dir: str | None = None
    #: Checks the command's own keys before any folder exists.
    precheck: Callable[[DictConfig], None] | None = None
    #: Whether the lifecycle checks the checkpoint (safe load, same experiment) before the folder;
    #: predict does it itself, from the checkpoint alone.
    check_checkpoint: bool = True
    #: Prints the summary at the end; None: the metrics table (`console.print_summary`).
    report: Callable[[dict[str, Any]], None] | None = None
    #: "run": a run folder the lifecycle owns (config.yaml, logs, checkpoints, summary.json).
    #: "artifact": a folder holding only what the command writes and its own record (export:
    #: model.<ext> and export.json), planned by `plan_folder` before anything is loaded, made by the
    #: command when it is ready to write, discarded by the lifecycle if the command fails before
    #: its record is written.
    folder: str = "run"
    plan_folder: Callable[[DictConfig], ArtifactFolder] | None = None
    #: Reads the command's own flags (`--format onnx`) into its config keys, before composing.
    flags: Callable[[list[str]], list[str]] | None = None


class ArtifactFolder(Protocol):
    """An artifact command's folder (litvision.deploy.out_dir.OutDir)."""

    path: Path

    def make(self) -> None: ...

    def discard(self) -> None: ...


@dataclass
class Plan:
    command: Command
    cfg: DictConfig
    run_dir: Path
    #: new: a fresh folder; resume: continue an interrupted run in its folder; fork: a new run that
    #: starts from a finished run's checkpoint; job: a folder Hydra's multirun made for this job.
    mode: str
    ckpt_path: str | None
    overrides: list[str]
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    source_run: Path | None = None
    #: From the command line: the folder must not exist yet (a new run never reuses a folder).
    fresh_folder: bool = True
    configure_logging: bool = True
    #: The config as composed, before interpolations were resolved (.hydra/config.yaml).
    composed_yaml: str | None = None
    #: An artifact command's planned folder (Command.folder == "artifact"); run_dir is its path.
    artifact: ArtifactFolder | None = None

    @property
    def extending(self) -> bool:
        """A fork of a finished run, or a resume given more epochs or steps than the run had."""
        grown = any(k in self.changes for k in ("trainer.max_epochs", "trainer.max_steps"))
        return self.ckpt_path is not None and (self.mode == "fork" or (self.mode == "resume" and grown))
