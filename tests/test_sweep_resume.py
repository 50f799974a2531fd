"""Resumable sweeps (grid and Optuna, after a real SIGKILL), `litvision sweep resume=`, its refusals,
and extending a run with the LR schedule re-planned to the new end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from conftest import HELPERS_ENV, TINY_SWEEP, compose_cfg, file_digest, one_line_refusal, run_cli


def _trained(marker: Path) -> list[tuple[str, str]]:
    """(job folder name, checkpoint it started from or 'None') for every run that started training."""
    if not marker.exists():
        return []
    return [tuple(line.split(" ", 1)) for line in marker.read_text().splitlines()]


def _kill(job: int, marker: Path) -> list[str]:
    return [
        "+callbacks.kill._target_=resume_helpers.KillJob",
        f"+callbacks.kill.job={job}",
        f"+callbacks.kill.marker={marker}",
    ]


# -- grid -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_killed_grid_sweep_rerun_trains_only_the_missing_jobs(tmp_path: Path) -> None:
    """Catches a rerun that starts a new sweep folder, retrains or rewrites finished jobs (Hydra's
    .hydra/ files included), or restarts the killed job from scratch instead of its last.ckpt."""
    runs, marker = tmp_path / "runs", tmp_path / "trained.txt"
    args = [
        *TINY_SWEEP,
        "model.optimizer.lr=1e-3,1e-2",
        "seed=1,2",
        *_kill(2, marker),
        f"paths.runs_dir={runs}",
    ]
    first = run_cli("litvision", "sweep", *args, env=HELPERS_ENV, timeout=600)
    assert first.returncode == -9, first.stderr[-3000:]  # SIGKILL, in job 2 at epoch 1
    [sweep] = (runs / "digits_cnn" / "multirun").iterdir()
    assert sweep.name.startswith("sweep-")
    assert [r for r, _ in _trained(marker)] == ["0", "1", "2"]
    assert all((sweep / j / "summary.json").is_file() for j in ("0", "1"))
    assert (sweep / "2" / "checkpoints" / "last.ckpt").is_file() and not (
        sweep / "2" / "summary.json"
    ).exists()
    assert not (sweep / "3").exists()
    before = {j: file_digest(sweep / j) for j in ("0", "1")}
    marker.unlink()

    again = run_cli("litvision", "sweep", *args, env=HELPERS_ENV, timeout=600)  # the same command
    assert again.returncode == 0, again.stderr[-3000:]
    assert [p.name for p in (runs / "digits_cnn" / "multirun").iterdir()] == [sweep.name]
    assert _trained(marker) == [("2", str(sweep / "2" / "checkpoints" / "last.ckpt")), ("3", "None")]
    assert {j: file_digest(sweep / j) for j in ("0", "1")} == before
    summaries = {j: json.loads((sweep / j / "summary.json").read_text()) for j in ("0", "1", "2", "3")}
    assert all(s["global_step"] == 6 and s["epochs_completed"] == 2 for s in summaries.values())
    resumed = yaml.safe_load((sweep / "2" / "resume-1.yaml").read_text())
    assert resumed["checkpoint"] == str(sweep / "2" / "checkpoints" / "last.ckpt")
    assert summaries["2"]["resumes"] == 1 and "resumes" not in summaries["3"]
    seen = {
        (s["seed"], yaml.safe_load((sweep / j / "config.yaml").read_text())["model"]["optimizer"]["lr"])
        for j, s in summaries.items()
    }
    assert seen == {(1, 1e-3), (2, 1e-3), (1, 1e-2), (2, 1e-2)}
    assert f"{sweep / '0'} is finished: skipped." in again.stderr


# -- Optuna ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_optuna_sweep_killed_in_trial_3_resumed_to_6_trials_is_one_study(tmp_path: Path) -> None:
    """Catches a resumed search that starts a new study, renumbers trials into finished folders,
    re-runs finished trials, gives the killed trial new parameters, or counts n_trials as 'more'."""
    from litvision.lifecycle.optuna_study import load_study

    runs, marker = tmp_path / "runs", tmp_path / "trained.txt"
    args = ["hparams_search=digits_cnn_optuna", *TINY_SWEEP, *_kill(3, marker), f"paths.runs_dir={runs}"]
    first = run_cli("litvision", "sweep", *args, "hydra.sweeper.n_trials=4", env=HELPERS_ENV, timeout=600)
    assert first.returncode == -9, first.stderr[-3000:]
    [sweep] = (runs / "digits_cnn" / "multirun").iterdir()
    killed = load_study(sweep)  # Optuna's journal file in the sweep folder, as the kill left it
    assert [(t.number, t.state.name) for t in killed.trials] == [
        (0, "COMPLETE"), (1, "COMPLETE"), (2, "COMPLETE"), (3, "RUNNING"),
    ]  # fmt: skip
    killed_params = killed.trials[3].params
    before = {j: file_digest(sweep / j) for j in ("0", "1", "2")}
    marker.unlink()

    again = run_cli(
        "litvision", "sweep", f"resume={sweep}", "hydra.sweeper.n_trials=6", env=HELPERS_ENV, timeout=600
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert _trained(marker) == [
        ("3", str(sweep / "3" / "checkpoints" / "last.ckpt")),
        ("4", "None"),
        ("5", "None"),
    ]
    assert {j: file_digest(sweep / j) for j in ("0", "1", "2")} == before

    study = load_study(sweep)  # optuna's own Study, loaded from the sweep folder's journal
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4, 5]
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    assert study.trials[3].params == killed_params
    for t in study.trials:
        summary = json.loads((sweep / str(t.number) / "summary.json").read_text())
        assert t.value == summary["best_val"]["val/acc"]
        cfg = yaml.safe_load((sweep / str(t.number) / "config.yaml").read_text())
        assert cfg["model"]["optimizer"]["lr"] == t.params["model.optimizer.lr"]
    # Distinct draws: a sampler restarted with its seed would repeat trial 0's parameters as trial 4.
    assert study.trials[4].params != study.trials[0].params
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_value"] == max(t.value for t in study.trials)


# -- refusals ------------------------------------------------------------------------------------
def test_sweep_resume_of_a_missing_folder_or_a_non_sweep_is_one_line(tmp_path: Path) -> None:
    """Catches resume= that silently starts a new sweep (or writes into the folder) when it names no sweep."""
    runs = tmp_path / "runs"
    proc = run_cli(
        "litvision", "sweep", f"resume={tmp_path / 'nope'}", f"paths.runs_dir={runs}", env=HELPERS_ENV
    )
    one_line_refusal(proc, f"resume={tmp_path / 'nope'}: no such folder")

    plain = tmp_path / "plain"
    (plain / "sub").mkdir(parents=True)
    (plain / "notes.txt").write_text("not a sweep")
    proc = run_cli("litvision", "sweep", f"resume={plain}", f"paths.runs_dir={runs}", env=HELPERS_ENV)
    one_line_refusal(proc, "is not a sweep folder", "sweep.yaml")

    run = tmp_path / "a_run"
    run.mkdir()
    (run / "config.yaml").write_text("name: digits_cnn\n")
    proc = run_cli("litvision", "sweep", f"resume={run}", env=HELPERS_ENV)
    one_line_refusal(proc, "is not a sweep folder", f"litvision fit resume={run}")

    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "a_run", "a_run/config.yaml", "plain", "plain/notes.txt", "plain/sub",
    ]  # fmt: skip


def test_sweep_resume_that_changes_what_jobs_train_is_refused(tmp_path: Path) -> None:
    """Catches resume=<sweep> mixing new training settings into a sweep's finished results."""
    sweep = tmp_path / "runs" / "digits_cnn" / "multirun" / "sweep-0123456789"
    sweep.mkdir(parents=True)
    (sweep / "sweep.yaml").write_text(yaml.safe_dump({"overrides": [*TINY_SWEEP, "seed=1,2"]}))
    before = file_digest(sweep)
    proc = run_cli("litvision", "sweep", f"resume={sweep}", "model.optimizer.lr=0.5", env=HELPERS_ENV)
    one_line_refusal(proc, "model.optimizer.lr=0.5 would change what its jobs train")
    assert file_digest(sweep) == before and sorted(p.name for p in sweep.iterdir()) == ["sweep.yaml"]


def test_resume_of_an_older_timestamped_sweep_replays_its_multirun_yaml(tmp_path: Path) -> None:
    """Catches resume= that ignores Hydra's multirun.yaml (sweeps made before sweep.yaml) or drops the
    sweep's folder, so that the jobs would land in a new sweep."""
    from litvision.lifecycle.sweeps import resume_args

    old = tmp_path / "multirun" / "2026-11-20_10-00-00-000000"
    old.mkdir(parents=True)
    task = ["experiment=digits_cnn", "model.optimizer.lr=1e-3,1e-2", "seed=1,2"]
    (old / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": task}}}))
    args = resume_args(str(old), [f"resume={old}", "experiment=digits_cnn", "data.num_workers=2"])
    assert args == [*task, "data.num_workers=2", f"hydra.sweep.dir={old.resolve()}"]


def test_same_overrides_give_the_same_folder_and_launch_settings_do_not_count() -> None:
    """Catches a sweep folder that depends on the time, or on where the sweep runs (which would
    make a rerun or a move to SLURM start over), or that ignores what the jobs train."""
    from litvision.lifecycle.sweeps import sweep_id

    base = ["experiment=digits_cnn", "model.optimizer.lr=1e-3,1e-2", "seed=1,2"]
    same = [
        *base,
        "hydra/launcher=slurm",
        "hydra.sweeper.n_trials=9",
        "data.num_workers=4",
        "paths.runs_dir=/x",
    ]
    assert sweep_id(base) == sweep_id(list(base)) == sweep_id(same)
    assert sweep_id(base) != sweep_id([*base, "trainer.max_epochs=5"])
    # The order numbers the jobs (job n's folder holds its config): another order is another sweep.
    assert sweep_id(base) != sweep_id([base[0], base[2], base[1]])


def test_fold_out_of_range_from_the_cli_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    """Catches a fold refusal raised late (inside the DataModule) that leaves its run folder behind."""
    runs = tmp_path / "runs"
    proc = run_cli(
        "litvision",
        "fit",
        "experiment=digits_cnn",
        "data.num_folds=5",
        "data.fold=5",
        f"paths.runs_dir={runs}",
    )
    one_line_refusal(proc, "data.fold=5 is out of range for data.num_folds=5")
    assert not runs.exists() or not any(runs.rglob("*"))


# -- extending a run ------------------------------------------------------------------------------
def _expected_multiplier(step: int, *, total: int, warmup: int, floor: float, resumed_at: int | None = None,
                         old_total: int | None = None) -> float:  # fmt: skip
    """The documented rule, written out: warm-up, cosine to `floor` at `total`; extended at
    `resumed_at`, the cosine continues from its value then (old plan) down to `floor` at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    if resumed_at is None or step < resumed_at:
        end = old_total if old_total is not None else total
        return floor + (1 - floor) * 0.5 * (
            1 + math.cos(math.pi * min(1.0, (step - warmup) / (end - warmup)))
        )
    top = _expected_multiplier(resumed_at, total=old_total, warmup=warmup, floor=floor)
    return floor + (top - floor) * 0.5 * (1 + math.cos(math.pi * (step - resumed_at) / (total - resumed_at)))


@pytest.mark.slow
def test_extended_run_follows_the_replanned_cosine_at_every_step(tmp_path: Path) -> None:
    """Catches an extension that keeps the checkpoint's old end (the LR sits at the floor for the
    added epochs), restarts the cosine or the warm-up, or jumps the LR at the resume."""
    from litvision.train import train

    lr_log = tmp_path / "lr.jsonl"
    runs = tmp_path / "runs"
    cfg = compose_cfg(
        [
            *TINY_SWEEP,
            "trainer.max_epochs=3",
            "trainer.deterministic=true",
            "model.scheduler.name=cosine",
            "model.scheduler.warmup_epochs=1",
            "model.scheduler.min_lr_ratio=0.1",
            "+callbacks.lr._target_=resume_helpers.RecordLR",
            f"+callbacks.lr.path={lr_log}",
            "+callbacks.crash._target_=conftest.CrashAtEpochStart",
            "+callbacks.crash.epoch=2",
        ],
        runs,
    )
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg)  # a 3-epoch run, interrupted after epoch 1 (last.ckpt at step 6 of 9)
    [run] = (runs / "digits_cnn").iterdir()

    proc = run_cli("litvision", "fit", f"resume={run}", "trainer.max_epochs=5", env=HELPERS_ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    base = cfg.model.optimizer.lr
    steps = [json.loads(line) for line in lr_log.read_text().splitlines()]
    assert [s["step"] for s in steps] == list(range(15))  # 6 steps, then 9 more to the new end (5 x 3)
    for s in steps:
        want = base * _expected_multiplier(
            s["step"], total=15, warmup=3, floor=0.1, resumed_at=6, old_total=9
        )
        assert all(math.isclose(lr, want, rel_tol=1e-9) for lr in s["lrs"]), (s, want)
    # It ends at the floor, at the new end, and not before: the LR still decays after step 9.
    assert steps[9]["lrs"][0] > steps[14]["lrs"][0] > base * 0.1

    summary = json.loads((run / "summary.json").read_text())
    [ext] = summary["lr_schedule_extensions"]
    assert ext["at_step"] == 6 and ext["from_total_steps"] == 9 and ext["to_total_steps"] == 15
    assert math.isclose(ext["multiplier"], _expected_multiplier(6, total=9, warmup=3, floor=0.1))
    changed = yaml.safe_load((run / "resume-1.yaml").read_text())["changed"]
    assert changed["trainer.max_epochs"] == {"from": 3, "to": 5}


def test_replan_keeps_step_milestones_and_warmup_and_a_finished_cosine_at_its_floor() -> None:
    """Catches a re-plan that moves step milestones, redoes or skips the warm-up, lifts a cosine that
    had finished off its floor, or is not applied when the scheduler's checkpoint state is loaded."""
    import torch

    from litvision.tasks.optim import WarmupSchedule, build_scheduler

    step = WarmupSchedule(
        "step", total_steps=100, steps_per_epoch=10, warmup_steps=5, step_epochs=3, gamma=0.5
    )
    before = [step(s) for s in range(100)]
    assert step.replan(200, 40) is not None
    assert [step(s) for s in range(100)] == before and step(150) == 0.5**5

    # Resumed inside the warm-up: it goes on, and the cosine is planned over the new length.
    cos = WarmupSchedule("cosine", total_steps=20, steps_per_epoch=2, warmup_steps=6)
    cos.replan(40, 3)
    fresh = WarmupSchedule("cosine", total_steps=40, steps_per_epoch=2, warmup_steps=6)
    assert all(math.isclose(cos(s), fresh(s)) for s in range(40))

    done = WarmupSchedule("cosine", total_steps=20, steps_per_epoch=2, min_lr_ratio=0.05)
    done.replan(40, 20)
    assert all(math.isclose(done(s), 0.05) for s in range(20, 40))
    assert done.replan(40, 25) is None and len(done.extensions) == 1  # same length: nothing re-planned

    def scheduler(total: int) -> torch.optim.lr_scheduler.LambdaLR:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        return build_scheduler(opt, total_steps=total, max_epochs=total // 3, name="cosine", warmup_epochs=1)

    old = scheduler(9)
    for _ in range(6):
        old.optimizer.step()
        old.step()
    new = scheduler(15)
    new.load_state_dict(old.state_dict())
    fn = new.lr_lambdas[0]
    assert (fn.total_steps, fn.from_step) == (15, 6) and math.isclose(fn.from_value, old.lr_lambdas[0](6))
