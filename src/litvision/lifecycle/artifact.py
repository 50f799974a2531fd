"""Artifact commands (`Command.folder == "artifact"`, e.g. export): a folder that holds only what the
command writes and its own record. Planned like a run (composed, checked, its folder planned, before
anything is loaded or written); executed without a run folder's config, log or summary.json; what the
command made is discarded when it fails before its record."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from litvision.errors import find_user_error
from litvision.lifecycle.spec import Command, Plan


def plan_artifact(command: Command, cfg: DictConfig, args: list[str], composed_yaml: str) -> Plan:
    """The plan of an artifact command whose entry config `cfg` is composed and resolved: its keys
    checked (`precheck`) and its folder planned (`plan_folder`); nothing is written yet."""
    if command.plan_folder is None:
        raise ValueError(f"artifact command {command.name} has no plan_folder")
    if command.precheck:
        command.precheck(cfg)
    folder = command.plan_folder(cfg)
    return Plan(
        command=command,
        cfg=cfg,
        run_dir=folder.path,
        mode="new",
        ckpt_path=None,
        overrides=list(args),
        composed_yaml=composed_yaml,
        fresh_folder=False,
        configure_logging=False,
        artifact=folder,
    )


def execute_artifact(plan: Plan) -> dict[str, Any]:
    """Run an artifact command: its record is its summary (export.json), and whatever it made
    before writing that record is removed when it fails (a refusal, a bug, Ctrl-C)."""
    from litvision.lifecycle.session import Session

    assert plan.artifact is not None
    session = Session(plan.cfg, plan.run_dir, None, rank_zero=True)
    session.artifact = plan.artifact
    try:
        record = plan.command.runner(session)
    except BaseException as e:
        plan.artifact.discard()
        user_error = find_user_error(e) if isinstance(e, Exception) else None
        if user_error is None:
            raise
        raise user_error from None
    if plan.command.report is not None:
        plan.command.report(record)
    return record
