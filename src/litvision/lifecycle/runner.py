"""One run lifecycle for every command: plan (compose + validate, no folder yet) -> execute (folder,
lock, build, command, summary).

    plan = plan_run(litvision.commands.fit.COMMAND, ["experiment=digits_cnn", "trainer.max_epochs=5"])
    summary = execute(plan)

`plan_run` composes the config once, resolves what a `resume=` / `ckpt_path=` means for this
command, and refuses bad input (unknown keys, bad values, missing GPUs, an unwritable runs folder,
a resume that would change the run's settings) before anything is written. `execute` then owns
the run folder: it creates it (a new run never reuses a folder), takes its lock, records how the
run was started or resumed, runs the command, writes `summary.json` and releases the lock. A
refusal raised later (a missing dataset, a wrong class count, at any depth of Hydra's
`instantiate`) removes a new folder that holds no checkpoint yet, so no orphan folder is left.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from litvision.errors import UserError, find_user_error
from litvision.hardware import process_rank
from litvision.lifecycle import run_folder as folders

# Command and Plan lived here before spec.py; importing them from here keeps working.
from litvision.lifecycle.spec import ArtifactFolder, Command, Plan  # noqa: F401

log = logging.getLogger(__name__)


def value_of(args: list[str], key: str) -> str | None:
    """The last `key=value` (or `+key=`, `++key=`) on a command line; "" and "null" read as None."""
    for a in reversed(args):
        for prefix in (f"{key}=", f"+{key}=", f"++{key}="):
            if a.startswith(prefix):
                v = a[len(prefix) :].strip().strip("'\"")
                return None if v in ("", "null", "None") else v
    return None


def _checkpoint_file(path: str, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(
            f"Checkpoint not found: {path} ({what}). Pass an existing .ckpt file, "
            "e.g. runs/<experiment>/<timestamp>/checkpoints/last.ckpt."
        )
    return p.resolve()


def plan_run(command: Command, args: list[str]) -> Plan:
    """Everything up to (not including) the run folder: compose, resolve resume, validate."""
    from litvision.config import check_experiment, compose_checked
    from litvision.lifecycle.checks import preflight
    from litvision.lifecycle.resume import check_extension, check_resume_changes, replayable

    args = [a for a in args if a not in ("-m", "--multirun")]
    if command.folder == "artifact":
        from litvision.config import compose_checked
        from litvision.lifecycle.artifact import plan_artifact

        cfg = compose_checked(args, command.config_name)
        return plan_artifact(command, cfg, args, _resolve(cfg))
    worker = process_rank() != 0
    exp = value_of(args, "experiment")
    if exp is not None:
        check_experiment(exp)
    resume, ckpt = value_of(args, "resume"), value_of(args, "ckpt_path")
    if command.name != "fit" and resume:
        raise UserError(f"resume= is for `litvision fit`; `litvision {command.name}` takes ckpt_path=<file>.")
    if resume and ckpt:
        raise UserError(
            "Give resume=<run folder> or ckpt_path=<file>, not both: resume= continues a run from its "
            "last.ckpt, ckpt_path= from the file you name."
        )
    if command.needs_checkpoint and not ckpt:
        raise UserError(
            f"{command.name} needs a checkpoint: ckpt_path=<path/to.ckpt> "
            f"(make {'eval' if command.name == 'test' else command.name} ... CKPT=<path>)."
        )

    mode, base, source_run, start_ckpt = "new", [], None, None
    if resume:
        source_run = folders.owning_run(resume)
        if source_run is None:
            raise UserError(
                f"resume={resume} is not a run folder (no config.yaml or .hydra/ in it or its parents); "
                "pass runs/<experiment>/<timestamp> or its checkpoints/last.ckpt."
            )
        given = Path(resume).expanduser()
        last = source_run / folders.CHECKPOINTS / "last.ckpt"
        start_ckpt = str(given.resolve()) if given.is_file() else (str(last) if last.is_file() else None)
    elif ckpt:
        start_ckpt = str(_checkpoint_file(ckpt, "ckpt_path"))
        source_run = folders.owning_run(Path(start_ckpt).parent)
    explicit_dir = value_of(args, "hydra.run.dir")
    if command.name == "fit" and not worker and source_run is None and explicit_dir:
        # Re-running a command with the same hydra.run.dir (torchrun, a requeued script) continues it.
        d = Path(explicit_dir).expanduser()
        if d.is_dir() and folders.is_run_folder(d):
            source_run = d.resolve()
            last = source_run / folders.CHECKPOINTS / "last.ckpt"
            start_ckpt = str(last) if last.is_file() else None
            if folders.is_finished(source_run):
                raise UserError(
                    f"{source_run} is a finished run (it has summary.json) and is never written again; "
                    f"start a new run from it with resume={source_run}."
                )

    notes: list[str] = []
    if source_run is not None:
        run_overrides = replayable(folders.original_overrides(source_run))
        if command.name != "fit":
            base = _known_to(command, run_overrides)  # the run's own data and model
        elif folders.is_finished(source_run):
            mode = "fork"
            base = run_overrides if resume else []
            if start_ckpt is None:
                raise UserError(f"{source_run} is finished but has no checkpoints/last.ckpt to start from.")
        else:
            mode, base = "resume", run_overrides
    overrides = _merge_overrides(base, args)
    if mode == "resume" and not worker:
        overrides.append(f"hydra.run.dir={source_run}")
    if command.run_dir and value_of(overrides, "hydra.run.dir") is None:
        overrides.append(f"hydra.run.dir={command.run_dir}")
    if command.name == "tune":
        overrides.append("task_name=tune")  # tools tell its folder from a training run's

    cfg = compose_checked(overrides, command.config_name)
    composed_yaml = _resolve(cfg)
    preflight(cfg)
    run_dir = Path(cfg.paths.output_dir).resolve()
    changes = {}
    if mode == "resume" and not worker:
        changes = check_resume_changes(run_dir, cfg, given=args)
    if command.precheck:
        command.precheck(cfg)
    if start_ckpt is not None and command.check_checkpoint:
        checkpoint = _check_checkpoint(start_ckpt, cfg)
        grown = any(k in changes for k in ("trainer.max_epochs", "trainer.max_steps"))
        if command.name == "fit" and cfg.get("train", True) and (mode == "fork" or grown):
            check_extension(checkpoint, cfg, source_run or start_ckpt)
    if mode == "fork":
        notes.append(
            f"{source_run} is finished and read-only: this is a new run in {run_dir}, "
            f"starting from {Path(start_ckpt).name} of that run."
        )
    plan = Plan(
        command=command,
        cfg=cfg,
        run_dir=run_dir,
        mode=mode,
        ckpt_path=start_ckpt,
        # task_name=tune is the command's own setting, not something the user typed.
        overrides=[o for o in overrides if not o.startswith("hydra.") and o != "task_name=tune"],
        changes=changes,
        source_run=source_run,
        composed_yaml=composed_yaml,
    )
    for note in notes:
        print(note, file=sys.stderr)
    return plan


def _resolve(cfg: DictConfig) -> str:
    """Resolve every interpolation once: the run reads fixed values, whatever a resolver would say
    later. Returns the config as composed (with its interpolations), for .hydra/config.yaml."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from litvision.config import _one_line

    composed = OmegaConf.to_yaml(cfg)
    try:
        OmegaConf.resolve(cfg)
        return composed
    except OmegaConfBaseException as e:
        raise (find_user_error(e) or UserError(_one_line(e))) from None


def _known_to(command: Command, overrides: list[str]) -> list[str]:
    """The overrides whose top-level key the command's entry config has (a training run's
    `test=false` means nothing to predict's config, and Hydra would refuse it)."""
    import yaml

    from litvision.config import config_dir

    entry = yaml.safe_load((config_dir() / f"{command.config_name}.yaml").read_text()) or {}
    known = set(entry) - {"defaults"}
    for item in entry.get("defaults") or []:
        known |= set(item) if isinstance(item, dict) else {str(item)}
    known = {k.replace("override ", "").split("/")[0] for k in known}
    return [o for o in overrides if o.lstrip("+~").split("=", 1)[0].split(".")[0].split("/")[0] in known]


def _merge_overrides(base: list[str], args: list[str]) -> list[str]:
    """The run's own command line, then the new one. Repeating the original command (what a
    requeue or a re-run script does) must compose: an exact repeat is dropped, and `+key=` of a
    key the run already added becomes `++key=` (Hydra refuses to add a key twice)."""
    keys = {o.lstrip("+~").split("=", 1)[0] for o in base}
    merged = list(base)
    for a in args:
        if a in base:
            continue
        if a.startswith("+") and not a.startswith("++") and a[1:].split("=", 1)[0] in keys:
            a = "+" + a
        merged.append(a)
    return merged


def _check_checkpoint(path: str, cfg: DictConfig) -> dict[str, Any]:
    """The checkpoint loads safely and belongs to this experiment's task (one line if not),
    before a folder exists; a pickle payload in it is refused, never run. Returns it."""
    from litvision.utils.safe_load import check_compatible, load_checkpoint

    checkpoint = load_checkpoint(path)
    check_compatible(checkpoint, cfg, path)
    return checkpoint


def plan_for_config(command: Command, cfg: DictConfig, job: bool = False) -> Plan:
    """A plan for a config composed elsewhere (tests, notebooks, a Hydra multirun job).

    The run folder is `cfg.paths.output_dir`: a finished run there is refused (or, for a sweep job,
    skipped by the caller), an interrupted one continues from its last.ckpt (a requeued SLURM job).
    """
    from litvision.lifecycle.checks import preflight

    composed_yaml = _resolve(cfg)
    preflight(cfg)
    run_dir = Path(cfg.paths.output_dir).resolve()
    if folders.is_finished(run_dir):
        raise UserError(
            f"{run_dir} is a finished run (it has summary.json) and is never written again; "
            "choose another folder or resume=<run> to start a new run from it."
        )
    started = (run_dir / "config.yaml").is_file()
    last = run_dir / folders.CHECKPOINTS / "last.ckpt"
    ckpt = cfg.get("ckpt_path") or (str(last) if started and last.is_file() else None)
    return Plan(
        command=command,
        cfg=cfg,
        run_dir=run_dir,
        mode="resume" if started else ("job" if job else "new"),
        ckpt_path=str(ckpt) if ckpt else None,
        overrides=_task_overrides(),
        composed_yaml=composed_yaml,
        fresh_folder=False,
        configure_logging=False,
    )


def _task_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return [str(o) for o in HydraConfig.get().overrides.task]


def execute(plan: Plan) -> dict[str, Any]:
    """Own the run folder for the plan's command; returns the summary (written on rank zero)."""
    if plan.artifact is not None:
        from litvision.lifecycle.artifact import execute_artifact

        return execute_artifact(plan)
    from hydra.core.hydra_config import HydraConfig

    from litvision.utils.run import write_summary

    started = time.time()
    rank_zero = process_rank() == 0
    if not rank_zero:
        from lightning.pytorch.utilities import rank_zero_only

        # Lightning's guess reads RANK/LOCAL_RANK only (0 on another node's first process) until the
        # Trainer sets the real rank: the start panel and notes before it stay with global rank zero.
        rank_zero_only.rank = process_rank()
    run, cfg = plan.run_dir, plan.cfg
    created, lock = False, None
    try:
        if rank_zero:
            if plan.mode in ("new", "fork") and plan.fresh_folder:
                created = folders.create(run)
            elif not run.is_dir():
                run.mkdir(parents=True)
                created = True
            lock = folders.RunLock(run)
            lock.acquire()
            if plan.mode == "resume":
                folders.record_resume(
                    run,
                    {
                        "overrides": plan.overrides,
                        "checkpoint": plan.ckpt_path,
                        "changed": {k: {"from": a, "to": b} for k, (a, b) in plan.changes.items()},
                    },
                )
            elif not (run / "config.yaml").is_file():
                hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
                folders.write_start(run, cfg, hydra_cfg, plan.overrides, plan.composed_yaml)
        # The log file lives in the run folder, which only rank zero makes: another node starts on its
        # own and may get here first (or never see the folder, without a shared filesystem), so a
        # worker logs to the file only when the folder is already there.
        if plan.configure_logging and (rank_zero or run.is_dir()):
            from litvision.lifecycle.job_log import open_job_log

            open_job_log()
        from litvision.lifecycle.session import Session
        from litvision.utils import console

        session = Session(cfg, run, plan.ckpt_path, rank_zero, extending=plan.extending)
        if plan.command.name == "fit":
            console.print_config_tree(cfg)  # the log file always; the console with verbose=true
        console.print_start(cfg, str(run), plan.overrides)
        import lightning as L

        L.seed_everything(cfg.seed, workers=True, verbose=False)  # the start panel shows the seed
        from litvision.utils.safe_load import allow_project_types

        # Lightning's own checkpoint loads (fit/test ckpt_path) accept what the safe loader accepts.
        allow_project_types()
        with console.quiet_console(bool(cfg.get("verbose", False))):
            fields = plan.command.runner(session)
        summary = {
            "experiment": cfg.name,
            "task": {"fit": "train", "test": "eval"}.get(plan.command.name, plan.command.name),
            "command": plan.command.name,
            "seed": cfg.seed,
            "run_dir": str(run),
            **fields,
            **_provenance(plan),
            "wall_time_s": round(time.time() - started, 2),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if session.is_global_zero:
            write_summary(run, summary)
            if plan.command.report is not None:
                plan.command.report(summary)  # tune: its suggestion, not a metrics table
            elif plan.command.name != "predict":
                console.print_summary(summary)
        session.finish(summary)
        return summary
    except Exception as e:
        user_error = find_user_error(e)
        if user_error is None:
            raise
        if created and folders.remove_unstarted(run):
            log.info("removed %s: the run was refused before it started", run)
        raise user_error from None
    finally:
        if lock is not None:
            lock.release()


def _provenance(plan: Plan) -> dict[str, Any]:
    from litvision.config import project_root
    from litvision.utils.run import git_info

    out: dict[str, Any] = {}
    if plan.mode == "fork" and plan.source_run is not None:
        out["started_from"] = {"run": str(plan.source_run), "checkpoint": plan.ckpt_path}
    resumes = sorted(plan.run_dir.glob("resume-*.yaml"))
    if resumes:
        out["resumes"] = len(resumes)
    return {**out, **git_info(project_root())}
