"""The run lifecycle in-process (lifecycle/runner.py, run_folder.py, resume.py): planning, the run
folder's states, the lock, resume records and refusals, with real folders, real flocks and real
(tiny) fits. tests/test_lifecycle.py drives the same through the CLI in subprocesses; these run in
this process so that `make mutate` can tie each mutant to the tests that execute it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml
from conftest import compose_cfg
from omegaconf import OmegaConf

from litvision.cli import lifecycle_command
from litvision.cli import run as run_command
from litvision.errors import UserError
from litvision.lifecycle import run_folder as folders
from litvision.lifecycle.resume import RESUME_MAY_CHANGE, changed_keys, check_resume_changes, replayable
from litvision.lifecycle.runner import (
    _known_to,
    _merge_overrides,
    plan_for_config,
    plan_run,
    process_rank,
    value_of,
)

TESTS = Path(__file__).resolve().parent
FAST = [
    "experiment=digits_cnn",
    "trainer.max_epochs=2",
    "++trainer.limit_train_batches=1",
    "trainer.num_sanity_val_steps=0",
    "data.check_duplicates=off",
    "++trainer.limit_val_batches=1",
    "model.net.width=4",
    "test=false",
    "logger=csv",
    "callbacks.rich_progress_bar=null",
    "callbacks.model_summary=null",
    "callbacks.sample_grid=null",
]


@pytest.fixture(autouse=True)
def _clean_rank_env(monkeypatch) -> None:
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "JSM_NAMESPACE_RANK"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.syspath_prepend(str(TESTS))  # conftest.CrashAtEpochStart, instantiated by name


def _fit(args: list[str]) -> dict:
    return run_command("fit", args)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One finished run and one interrupted after epoch 0 (a crash, no summary), started from the
    command line's overrides as `litvision fit` starts them."""
    root = tmp_path_factory.mktemp("runs")
    sys.path.insert(0, str(TESTS))
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "JSM_NAMESPACE_RANK"):
        os.environ.pop(key, None)
    finished = Path(_fit([*FAST, f"paths.runs_dir={root / 'finished'}"])["run_dir"])
    return {"finished": finished, "interrupted": _interrupted(root / "interrupted"), "root": root}


def _interrupted(runs_dir: Path) -> Path:
    crash = ["+callbacks.crash._target_=conftest.CrashAtEpochStart", "+callbacks.crash.epoch=1"]
    with pytest.raises(RuntimeError, match="simulated crash"):
        _fit([*FAST, *crash, f"paths.runs_dir={runs_dir}"])
    (run,) = [p.parent for p in runs_dir.rglob("config.yaml") if p.parent.name != ".hydra"]
    assert not (run / "summary.json").exists() and (run / "checkpoints" / "last.ckpt").is_file()
    return run


# -- resume.py ------------------------------------------------------------------------------------------
def test_replayable_drops_how_a_run_was_launched() -> None:
    """Catches: a launch override replayed on resume (ckpt_path, resume, hydra.*, hydra/ groups, a sweep's
    hparams_search), also behind + / ~, and a training key dropped."""
    given = [
        "trainer.max_epochs=3",
        "+callbacks.x._target_=a.B",
        "ckpt_path=a.ckpt",
        "+ckpt_path=b.ckpt",
        "resume=runs/x",
        "hydra.run.dir=/tmp/x",
        "~hydra.job",
        "hydra/launcher=submitit_slurm",
        "hparams_search=digits_cnn_optuna",
        "+hydra.job.env_set.X=1",
        "seed=1",
    ]
    assert replayable(given) == ["trainer.max_epochs=3", "+callbacks.x._target_=a.B", "seed=1"]


def test_changed_keys_reports_every_differing_leaf_with_both_values() -> None:
    """Catches: keys present on one side only dropped or given the sentinel, equal keys reported, and
    the report unsorted."""
    saved = {"a": {"b": 1, "c": 2}, "gone": 5, "same": [1, 2]}
    new = {"a": {"b": 1, "c": 3}, "added": "x", "same": [1, 2]}
    out = changed_keys(saved, new)
    assert out == {"a.c": (2, 3), "added": (None, "x"), "gone": (5, None)}
    assert list(out) == ["a.c", "added", "gone"]
    # A key set to null on one side and absent on the other is a change too.
    assert changed_keys({"k": None}, {}) == {"k": (None, None)}
    assert changed_keys({}, {"k": None}) == {"k": (None, None)}


def test_resume_allows_only_the_listed_keys_and_names_the_first_refused(tmp_path: Path) -> None:
    """Catches: a prefix match without the dot (trainer.max_epochs_x or loggerx passing as allowed), the
    refusal message losing the key, both values or the count of further keys (also for exactly one
    more), ckpt_path/resume reported as changes, and the new config compared unresolved."""
    run = tmp_path / "run"
    run.mkdir()
    assert check_resume_changes(run, OmegaConf.create({"a": 1})) == {}  # no config.yaml: nothing to compare
    saved = {
        "trainer": {"max_epochs": 2, "lr": 0.1},
        "logger": {"csv": {"x": 1}},
        "paths": {"runs_dir": "a"},
        "ckpt_path": None,
    }
    OmegaConf.save(OmegaConf.create(saved), run / "config.yaml")
    allowed = {
        **saved,
        "trainer": {"max_epochs": 9, "lr": 0.1},
        "logger": {"csv": {"x": 2}},
        "paths": {"runs_dir": "b"},
        "ckpt_path": "last.ckpt",
    }
    assert check_resume_changes(run, OmegaConf.create(allowed)) == {
        "trainer.max_epochs": (2, 9),
        "logger.csv.x": (1, 2),
        "paths.runs_dir": ("a", "b"),
    }
    refused = {**saved, "trainer": {"max_epochs": 2, "lr": 0.5, "max_epochs_x": 1}, "loggerx": 1}
    with pytest.raises(UserError) as e:
        check_resume_changes(run, OmegaConf.create(refused))
    assert str(e.value) == (
        f"Resuming {run} would change loggerx from None to 1 (and 2 more key(s)); a resume keeps the run's "
        f"own config except {', '.join(RESUME_MAY_CHANGE[:7])}, logger and paths. Drop that override, "
        "or start a new run from its weights with model.net.weights=<checkpoint>."
    )
    with pytest.raises(UserError, match=r"would change trainer.lr from 0.1 to 0.5; a resume keeps"):
        check_resume_changes(run, OmegaConf.create({**saved, "trainer": {"max_epochs": 2, "lr": 0.5}}))
    two = {**saved, "trainer": {"max_epochs": 2, "lr": 0.5}, "seed": 1}
    with pytest.raises(
        UserError, match=r"would change seed from None to 1 \(and 1 more key\(s\)\); a resume"
    ):
        check_resume_changes(run, OmegaConf.create(two))
    # The new config is compared resolved: an interpolation giving the run's value is no change.
    same = OmegaConf.create({**saved, "trainer": {"max_epochs": "${epochs}", "lr": 0.1}, "epochs": 2})
    OmegaConf.save(OmegaConf.create({**saved, "epochs": 2}), run / "config.yaml")
    assert check_resume_changes(run, same) == {}


# -- run_folder.py ----------------------------------------------------------------------------------------
def test_run_folder_states_and_the_run_a_path_belongs_to(tmp_path: Path) -> None:
    """Catches: a run recognised by only one of its two marks, a finished run not told by summary.json,
    and a checkpoint or a file not traced to its run (or a path two levels too deep traced)."""
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "checkpoints" / "deep").mkdir(parents=True)
    (a / "config.yaml").write_text("x: 1\n")
    (b / ".hydra").mkdir(parents=True)
    (b / ".hydra" / "overrides.yaml").write_text("[]\n")
    (b / ".hydra" / "config.yaml").write_text("x: 1\n")
    assert folders.is_run_folder(a) and folders.is_run_folder(b) and not folders.is_run_folder(tmp_path)
    assert not folders.is_finished(a)
    (a / "summary.json").write_text("{}")
    assert folders.is_finished(a)
    ckpt = a / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(b"x")
    assert folders.owning_run(a) == a.resolve() and folders.owning_run(ckpt) == a.resolve()
    assert folders.owning_run(a / "config.yaml") == a.resolve()
    assert folders.owning_run(a / "checkpoints" / "deep" / "x.ckpt") is None
    assert folders.owning_run(tmp_path / "nothing") is None


def test_original_overrides(tmp_path: Path) -> None:
    """Catches: a run without .hydra/overrides.yaml resumed with a guessed config, and an empty
    overrides file read as something other than []."""
    with pytest.raises(UserError) as e:
        folders.original_overrides(tmp_path)
    assert str(e.value) == (
        f"{tmp_path} has no .hydra/overrides.yaml, so its configuration cannot be restored; "
        "start a new run with model.net.weights=<its checkpoint> instead."
    )
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("")
    assert folders.original_overrides(tmp_path) == []
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- seed=3\n- trainer.max_epochs=2\n")
    assert folders.original_overrides(tmp_path) == ["seed=3", "trainer.max_epochs=2"]


def test_run_lock_is_exclusive_names_its_holder_and_leaves_no_file_in_a_finished_run(tmp_path: Path) -> None:
    """Catches: a blocking or shared lock (a second trainer waits or joins instead of being refused),
    the holder not written or not read back (or a garbled one crashing the refusal), the lock not
    released, a release without a lock failing, a finished run keeping .lock (or failing when it is
    gone already), and the lock file's mode."""
    first, second = folders.RunLock(tmp_path), folders.RunLock(tmp_path)
    first.release()  # never acquired: nothing to release
    first.acquire()
    umask = os.umask(0)
    os.umask(umask)
    assert ((tmp_path / ".lock").stat().st_mode & 0o777) == 0o644 & ~umask
    holder = (tmp_path / ".lock").read_text()
    assert holder.startswith(f"pid {os.getpid()} since 20")
    with pytest.raises(UserError) as e:
        second.acquire()
    assert str(e.value) == (
        f"{tmp_path} is being trained by {holder}; wait for it to end (or stop it) before resuming this run."
    )
    first.release()
    first.release()  # twice is harmless
    assert (tmp_path / ".lock").is_file()  # an unfinished run keeps its lock file
    second.acquire()
    assert (tmp_path / ".lock").read_text().startswith(f"pid {os.getpid()} since ")
    (tmp_path / "summary.json").write_text("{}")
    second.release()
    assert not (tmp_path / ".lock").exists()
    (tmp_path / ".lock").write_text("")
    third, fourth = folders.RunLock(tmp_path), folders.RunLock(tmp_path)
    third.acquire()
    (tmp_path / ".lock").write_text("")  # a holder that wrote nothing
    with pytest.raises(UserError, match="is being trained by another process;"):
        fourth.acquire()
    (tmp_path / ".lock").write_bytes(b"\xffpid 7")  # a garbled holder line is shown, not a crash
    with pytest.raises(UserError, match="is being trained by \ufffdpid 7;"):
        fourth.acquire()
    (tmp_path / ".lock").unlink()  # someone tidied the finished run's folder meanwhile
    third.release()


def test_create_never_reuses_a_folder_holding_files(tmp_path: Path) -> None:
    """Catches: an existing folder with files reused for a new run, an empty (mount-point) folder
    refused, and an OSError other than 'exists' reaching the user as a traceback."""
    assert folders.create(tmp_path / "x" / "new") is True and (tmp_path / "x" / "new").is_dir()
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert folders.create(tmp_path / "empty") is False
    (tmp_path / "empty" / "sub" / "f").write_text("x")
    with pytest.raises(UserError) as e:
        folders.create(tmp_path / "empty")
    assert str(e.value) == (
        f"Run folder {tmp_path / 'empty'} already exists; a new run never writes into an old one. "
        "Leave hydra.run.dir unset (a fresh timestamped folder) or resume it with resume=<folder>."
    )
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError) as e:
        folders.create(tmp_path / "file" / "run")
    assert str(e.value) == (
        f"Cannot create the run folder {tmp_path / 'file' / 'run'}: Not a directory. Use paths.runs_dir=<folder>."
    )
    with pytest.raises(UserError, match="already exists"):
        folders.create(tmp_path / "file")  # a file where the folder should be


def test_write_start_records_the_config_once_and_keeps_a_multirun_jobs_hydra_folder(tmp_path: Path) -> None:
    """Catches: .hydra/config.yaml written resolved instead of as composed, overrides or hydra.yaml not
    written, and a Hydra multirun job's own .hydra/ overwritten."""
    cfg = OmegaConf.create({"a": 1, "b": "${a}"})
    folders.write_start(
        tmp_path, cfg, OmegaConf.create({"job": {"name": "x"}}), ["a=1", "+c=2"], "composed: 1\n"
    )
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == {"a": 1, "b": 1}
    assert (tmp_path / ".hydra" / "config.yaml").read_text() == "composed: 1\n"
    assert yaml.safe_load((tmp_path / ".hydra" / "overrides.yaml").read_text()) == ["a=1", "+c=2"]
    assert yaml.safe_load((tmp_path / ".hydra" / "hydra.yaml").read_text()) == {
        "hydra": {"job": {"name": "x"}}
    }
    other = tmp_path / "plain"
    folders.write_start(other, cfg, None, [], None)
    assert yaml.safe_load((other / ".hydra" / "config.yaml").read_text()) == {"a": 1, "b": "${a}"}
    assert yaml.safe_load((other / ".hydra" / "overrides.yaml").read_text()) == []
    assert not (other / ".hydra" / "hydra.yaml").exists()
    job = tmp_path / "job"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
    folders.write_start(job, cfg, None, ["seed=2"], "x: 2\n")
    assert (job / ".hydra" / "overrides.yaml").read_text() == "- seed=1\n"
    assert not (job / ".hydra" / "config.yaml").exists() and (job / "config.yaml").is_file()


def test_record_resume_numbers_the_records_and_writes_plain_yaml(tmp_path: Path, monkeypatch) -> None:
    """Catches: records overwriting each other (numbering), the command or start time missing, and
    non-YAML values (paths, tuples) breaking the write."""
    monkeypatch.setattr(sys, "argv", ["litvision", "fit", "resume=x"])
    first = folders.record_resume(tmp_path, {"checkpoint": tmp_path / "last.ckpt", "changed": {"k": (1, 2)}})
    second = folders.record_resume(tmp_path, {"overrides": ["a=1"]})
    assert (first.name, second.name) == ("resume-1.yaml", "resume-2.yaml")
    data = yaml.safe_load(first.read_text())
    assert data["command"] == "litvision fit resume=x" and data["started_at"].startswith("20")
    assert data["started_at"].endswith("+00:00")  # UTC, whatever the machine's time zone
    assert data["checkpoint"] == str(tmp_path / "last.ckpt") and data["changed"] == {"k": [1, 2]}
    assert yaml.safe_load(second.read_text())["overrides"] == ["a=1"]


def test_remove_unstarted_keeps_a_run_with_checkpoints_and_tidies_empty_parents(tmp_path: Path) -> None:
    """Catches: a run with a checkpoint removed, the experiment folder made for the run left behind,
    the eval/predict/tune level not tidied, and a non-empty parent removed."""
    run = tmp_path / "exp" / "stamp"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert folders.remove_unstarted(run) is False and run.is_dir()
    (run / "checkpoints" / "last.ckpt").unlink()
    assert folders.remove_unstarted(run) is True and not (tmp_path / "exp").exists()
    for kind in ("eval", "predict", "tune"):
        nested = tmp_path / "exp2" / kind / "stamp"
        nested.mkdir(parents=True)
        assert folders.remove_unstarted(nested) is True and not (tmp_path / "exp2").exists()
    keep = tmp_path / "exp3" / "stamp"
    keep.mkdir(parents=True)
    (tmp_path / "exp3" / "other").mkdir()
    assert folders.remove_unstarted(keep) is True and (tmp_path / "exp3" / "other").is_dir()
    plain = tmp_path / "exp4" / "sub" / "stamp"
    plain.mkdir(parents=True)
    folders.remove_unstarted(plain)
    assert (tmp_path / "exp4").is_dir() and not (tmp_path / "exp4" / "sub").exists()
    assert folders.remove_unstarted(tmp_path / "never" / "made") is True  # nothing to remove: no error


def test_read_summary_safely(tmp_path: Path) -> None:
    """Catches: a missing, malformed, non-UTF-8 or non-object summary.json raising instead of None."""
    assert folders.read_summary_safely(tmp_path) is None
    for bad in (b"{not json", b"\xff\xfe", b"[1, 2]"):
        (tmp_path / "summary.json").write_bytes(bad)
        assert folders.read_summary_safely(tmp_path) is None
    (tmp_path / "summary.json").write_text('{"test": {"acc": 1}}')
    assert folders.read_summary_safely(tmp_path) == {"test": {"acc": 1}}


# -- runner.py: command lines --------------------------------------------------------------------------
def test_process_rank_reads_the_launchers_variables_in_order(monkeypatch) -> None:
    """Catches: a rank variable skipped or read in another order, and an empty or non-numeric value
    taken as a rank."""
    assert process_rank() == 0
    monkeypatch.setenv("JSM_NAMESPACE_RANK", "4")
    assert process_rank() == 4
    monkeypatch.setenv("LOCAL_RANK", "x")
    assert process_rank() == 4
    monkeypatch.setenv("SLURM_PROCID", "")
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert process_rank() == 2
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert process_rank() == 3
    monkeypatch.setenv("RANK", "1")
    assert process_rank() == 1


def test_value_of_reads_the_last_setting_of_a_key() -> None:
    """Catches: the first setting taken instead of the last, + / ++ forms missed, quotes kept, and
    empty / null values read as strings."""
    args = ["resume=a", "x.resume=z", "+resume='b'", "seed=1"]
    assert value_of(args, "resume") == "b"
    assert value_of([*args, '++resume="c"'], "resume") == "c"
    for empty in ("resume=", "resume=null", "resume=None", "resume=''"):
        assert value_of(["resume=a", empty], "resume") is None
    assert value_of(args, "ckpt_path") is None and value_of(["ckpt_path=a"], "ckpt") is None


def test_merge_overrides_lets_a_requeued_command_compose() -> None:
    """Catches: an exact repeat of the run's override added twice, and `+key=` of a key the run
    already added not turned into `++key=` (Hydra refuses adding a key twice)."""
    base = ["+callbacks.x.a=1", "seed=2", "~callbacks.y"]
    assert _merge_overrides(base, ["seed=2", "+callbacks.x.a=5", "++z=1", "+w=1", "+callbacks.y=3"]) == [
        *base,
        "++callbacks.x.a=5",
        "++z=1",
        "+w=1",
        "++callbacks.y=3",
    ]


def test_known_to_keeps_only_the_keys_an_entry_config_has() -> None:
    """Catches: a training run's overrides replayed into `test`/`predict` unfiltered (Hydra refuses
    train-only keys), and group overrides (data=, model/...) or +/~ forms filtered out."""
    given = [
        "test=false",
        "data=cifar10",
        "model.net.width=4",
        "+trainer.x=1",
        "~logger",
        "debug/x=y",
        "model.v=a=b",
        "tune.x=1",
        "defaults=x",
        "e=1",
    ]
    kept = ["data=cifar10", "model.net.width=4", "+trainer.x=1", "~logger", "debug/x=y", "model.v=a=b"]
    assert _known_to(lifecycle_command("test"), given) == kept
    assert _known_to(lifecycle_command("predict"), given) == kept


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        (
            "test",
            ["resume=runs/x"],
            r"^resume= is for `litvision fit`; `litvision test` takes ckpt_path=<file>\.$",
        ),
        ("fit", ["resume=a", "ckpt_path=b"], r"^Give resume=<run folder> or ckpt_path=<file>, not both"),
        (
            "test",
            [],
            r"^test needs a checkpoint: ckpt_path=<path/to.ckpt> \(make eval \.\.\. CKPT=<path>\)\.$",
        ),
        (
            "predict",
            [],
            r"^predict needs a checkpoint: ckpt_path=<path/to.ckpt> \(make predict \.\.\. CKPT=<path>\)\.$",
        ),
        (
            "fit",
            ["ckpt_path=/no/such.ckpt"],
            r"^Checkpoint not found: /no/such.ckpt \(ckpt_path\)\. Pass an existing \.ckpt file, "
            r"e\.g\. runs/<experiment>/<timestamp>/checkpoints/last\.ckpt\.$",
        ),
    ],
)
def test_plan_refuses_bad_command_lines_in_one_line(command: str, args: list[str], message: str) -> None:
    """Catches: each refusal of plan_run dropped, inverted or reworded without its fix."""
    with pytest.raises(UserError, match=message):
        plan_run(lifecycle_command(command), ["experiment=digits_cnn", *args])


def test_resume_of_something_that_is_no_run_is_refused(tmp_path: Path) -> None:
    """Catches: a resume of an arbitrary folder accepted (a new run in it, or a crash later)."""
    with pytest.raises(UserError) as e:
        plan_run(lifecycle_command("fit"), [f"resume={tmp_path}"])
    assert str(e.value) == (
        f"resume={tmp_path} is not a run folder (no config.yaml or .hydra/ in it or its parents); "
        "pass runs/<experiment>/<timestamp> or its checkpoints/last.ckpt."
    )


# -- runner.py: plans and execution of real runs ------------------------------------------------------
def test_new_run_plan_and_summary(runs: dict[str, Path]) -> None:
    """Catches: a fresh run planned as anything but `new`, and the summary losing its fields (task,
    command, seed, run folder, provenance, timing) or summary.json not written."""
    run = runs["finished"]
    summary = json.loads((run / "summary.json").read_text())
    assert (
        summary["experiment"] == "digits_cnn" and summary["task"] == "train" and summary["command"] == "fit"
    )
    assert summary["seed"] == 42 and summary["run_dir"] == str(run) and summary["global_step"] == 2
    assert summary["wall_time_s"] > 0 and summary["finished_at"].startswith("20") and "resumes" not in summary
    assert "started_from" not in summary and "git_commit" in summary or "git" in json.dumps(summary)
    assert not (run / ".lock").exists()  # a finished run keeps no lock file
    assert isinstance(summary["wall_time_s"], float) and summary["wall_time_s"] < 3600
    assert round(summary["wall_time_s"], 2) == summary["wall_time_s"]
    assert summary["finished_at"].endswith("+00:00")
    assert (run / ".hydra" / "hydra.yaml").is_file()  # Hydra's own config, as a Hydra app records it
    assert "digits_cnn" in (run / "train.log").read_text()  # the run's log file, as Hydra's job_logging says
    assert "${" in (run / ".hydra" / "config.yaml").read_text()  # as composed, interpolations kept
    assert yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())[0] == "experiment=digits_cnn"
    plan = plan_run(lifecycle_command("fit"), [*FAST, f"paths.runs_dir={runs['root'] / 'plans'}"])
    assert plan.mode == "new" and plan.ckpt_path is None and plan.source_run is None
    assert plan.run_dir.parent == (runs["root"] / "plans" / "digits_cnn").resolve()
    assert not plan.run_dir.exists()  # planning writes nothing
    assert not [o for o in plan.overrides if o.startswith("hydra.")]


def test_resume_plan_continues_in_the_runs_folder_from_its_last_checkpoint(runs: dict[str, Path]) -> None:
    """Catches: an interrupted run resumed in a new folder, from no or another checkpoint, without its
    own overrides, or with an allowed change not recorded."""
    run = runs["interrupted"]
    plan = plan_run(lifecycle_command("fit"), [f"resume={run}", "trainer.max_epochs=3"])
    assert plan.mode == "resume" and plan.run_dir == run.resolve() and plan.source_run == run.resolve()
    assert plan.ckpt_path == str(run.resolve() / "checkpoints" / "last.ckpt")
    assert plan.overrides[: len(FAST)] == FAST and plan.overrides[-1] == "trainer.max_epochs=3"
    assert plan.changes == {"trainer.max_epochs": (2, 3)}
    assert plan.cfg.trainer.limit_train_batches == 1  # the run's own config
    from_file = plan_run(lifecycle_command("fit"), [f"resume={run / 'checkpoints' / 'best-epoch000.ckpt'}"])
    assert from_file.ckpt_path == str((run / "checkpoints" / "best-epoch000.ckpt").resolve())
    again = plan_run(lifecycle_command("fit"), [*FAST, f"hydra.run.dir={run}"])
    assert again.mode == "resume" and again.ckpt_path == str(run.resolve() / "checkpoints" / "last.ckpt")
    with pytest.raises(UserError, match=r"would change model.net.width from 4 to 8"):
        plan_run(lifecycle_command("fit"), [f"resume={run}", "model.net.width=8"])


def test_a_finished_run_is_forked_never_written(runs: dict[str, Path], capsys) -> None:
    """Catches: a resume of a finished run writing into it (instead of a new run from its last.ckpt),
    the fork not announced, its folder reused by hydra.run.dir, and a fork without a checkpoint."""
    run = runs["finished"]
    plan = plan_run(
        lifecycle_command("fit"),
        [f"resume={run}", "trainer.max_epochs=3", f"paths.runs_dir={runs['root'] / 'forks'}"],
    )
    assert plan.mode == "fork" and plan.run_dir != run.resolve() and plan.source_run == run.resolve()
    assert plan.ckpt_path == str(run.resolve() / "checkpoints" / "last.ckpt")
    assert plan.cfg.model.net.width == 4  # resume= of a finished run replays its overrides
    err = capsys.readouterr().err
    assert (
        f"{run.resolve()} is finished and read-only: this is a new run in {plan.run_dir}, starting from last.ckpt"
        in err
    )
    ckpt_fork = plan_run(
        lifecycle_command("fit"), ["experiment=digits_cnn", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"]
    )
    assert ckpt_fork.mode == "fork" and ckpt_fork.cfg.model.net.width == 32  # ckpt_path= replays nothing
    with pytest.raises(UserError) as e:
        plan_run(lifecycle_command("fit"), [*FAST, f"hydra.run.dir={run}"])
    assert str(e.value) == (
        f"{run.resolve()} is a finished run (it has summary.json) and is never written again; "
        f"start a new run from it with resume={run.resolve()}."
    )
    bare = runs["root"] / "bare"
    (bare / ".hydra").mkdir(parents=True)
    (bare / ".hydra" / "overrides.yaml").write_text("- experiment=digits_cnn\n")
    (bare / "summary.json").write_text("{}")
    with pytest.raises(UserError, match=r"is finished but has no checkpoints/last.ckpt to start from\.$"):
        plan_run(lifecycle_command("fit"), [f"resume={bare}"])


def test_test_command_takes_the_runs_own_data_and_model(runs: dict[str, Path]) -> None:
    """Catches: a checkpoint's run overrides not replayed into `test` (a default model would not load
    the checkpoint), and training-only keys replayed (Hydra would refuse them)."""
    run = runs["finished"]
    plan = plan_run(lifecycle_command("test"), [f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"])
    assert plan.mode == "new" and plan.source_run == run.resolve()
    assert plan.cfg.model.net.width == 4 and "test=false" not in plan.overrides


def test_resume_executes_in_place_records_itself_and_finishes(tmp_path: Path) -> None:
    """Catches: a resume not recorded (resume-1.yaml), config.yaml rewritten, the summary not counting
    resumes, and a refusal at build time leaving a new folder behind while a crash keeps it."""
    run = _interrupted(tmp_path / "runs")
    config_before = (run / "config.yaml").read_text()
    summary = _fit([f"resume={run}", "trainer.max_epochs=3"])
    assert (
        summary["global_step"] == 3 and summary["resumes"] == 1 and summary["run_dir"] == str(run.resolve())
    )
    record = yaml.safe_load((run / "resume-1.yaml").read_text())
    assert record["checkpoint"] == str(run.resolve() / "checkpoints" / "last.ckpt")
    assert record["changed"] == {"trainer.max_epochs": {"from": 2, "to": 3}}
    assert record["overrides"][: len(FAST)] == FAST and record["overrides"][-1] == "trainer.max_epochs=3"
    assert (run / "config.yaml").read_text() == config_before and (run / "summary.json").is_file()
    # A refusal raised while building (the data's class count) removes the new folder it made.
    with pytest.raises(UserError, match="data.num_classes=3"):
        _fit([*FAST, "data.num_classes=3", f"paths.runs_dir={tmp_path / 'refused'}"])
    assert not (tmp_path / "refused" / "digits_cnn").exists()


def test_fork_and_test_commands_execute_with_their_provenance(runs: dict[str, Path]) -> None:
    """Catches: a fork's summary without `started_from` (the run and checkpoint it came from), a fork
    written into the finished run, and `test` reported under another task name than `eval`."""
    run = runs["finished"]
    before = (run / "summary.json").read_text()
    last = run.resolve() / "checkpoints" / "last.ckpt"
    # An extension trains more than the run has done (2 epochs); the same limit is refused.
    with pytest.raises(UserError, match=r"trainer.max_epochs=2 trains nothing more: .* has done 2 epochs"):
        plan_run(lifecycle_command("fit"), [f"resume={run}", f"paths.runs_dir={runs['root'] / 'forked'}"])
    fork = _fit([f"resume={run}", "trainer.max_epochs=3", f"paths.runs_dir={runs['root'] / 'forked'}"])
    assert fork["started_from"] == {"run": str(run.resolve()), "checkpoint": str(last)}
    assert Path(fork["run_dir"]).parent == (runs["root"] / "forked" / "digits_cnn").resolve()
    assert (run / "summary.json").read_text() == before and not list(run.glob("resume-*.yaml"))
    tested = run_command("test", [f"ckpt_path={last}", f"paths.runs_dir={runs['root'] / 'tested'}"])
    assert tested["task"] == "eval" and tested["command"] == "test" and "started_from" not in tested
    assert "test/acc" in tested["test"] and Path(tested["run_dir"]).parent.name == "eval"


def test_plan_for_a_config_composed_elsewhere(runs: dict[str, Path], tmp_path: Path) -> None:
    """Catches: train(cfg) (tests, notebooks, sweep jobs) writing into a finished run, not continuing a
    started one from its last.ckpt (or from the config's ckpt_path), and a sweep job not told apart."""
    fit = lifecycle_command("fit")
    new = plan_for_config(fit, compose_cfg(FAST, tmp_path / "a"))
    assert (new.mode, new.ckpt_path, new.fresh_folder, new.configure_logging) == ("new", None, False, False)
    assert new.run_dir.parent == (tmp_path / "a" / "digits_cnn").resolve() and new.composed_yaml
    assert plan_for_config(fit, compose_cfg(FAST, tmp_path / "b"), job=True).mode == "job"
    run = runs["interrupted"]
    started = plan_for_config(fit, compose_cfg([*FAST, f"hydra.run.dir={run}"], tmp_path))
    assert started.mode == "resume" and started.ckpt_path == str(run.resolve() / "checkpoints" / "last.ckpt")
    best = run / "checkpoints" / "best-epoch000.ckpt"
    chosen = plan_for_config(fit, compose_cfg([*FAST, f"hydra.run.dir={run}", f"ckpt_path={best}"], tmp_path))
    assert chosen.ckpt_path == str(best)
    finished = runs["finished"].resolve()
    with pytest.raises(UserError) as e:
        plan_for_config(fit, compose_cfg([*FAST, f"hydra.run.dir={finished}"], tmp_path))
    assert str(e.value) == (
        f"{finished} is a finished run (it has summary.json) and is never written again; "
        "choose another folder or resume=<run> to start a new run from it."
    )


def test_train_refused_while_building_removes_the_folder_it_made(tmp_path: Path, caplog) -> None:
    """Catches: the folder train(cfg) makes (parents included) not marked as made by this run, so a
    refusal while building leaves it behind, and the removal not logged."""
    import logging

    from litvision.train import train

    cfg = compose_cfg([*FAST, "data.num_classes=3"], tmp_path / "runs")
    with caplog.at_level(logging.INFO, logger="litvision.lifecycle.runner"), pytest.raises(UserError):
        train(cfg)
    run = Path(cfg.paths.output_dir).resolve()
    assert not run.exists() and not (tmp_path / "runs" / "digits_cnn").exists()
    assert f"removed {run}: the run was refused before it started" in caplog.text
