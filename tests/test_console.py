"""What `litvision fit` (= `make train`) prints: no Lightning tips, one screen before training,
the events that change what is trained as they happen, and everything in the run's log file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import compose_cfg, run_cli

# Lightning 2.6's tips and environment notices on a plain CPU run (issue 14): none may reach the console.
TIPS = (
    "srun",  # "The `srun` command is available on your system but is not used"
    "Tip:",  # litlogger / litmodels
    "Trainer already configured with model summary callbacks",
    "GPU available",
    "TPU available",
    "HPU available",
    "FLOPs",  # the column of zeros and "Total FLOPs: 0"
    "Loading `train_dataloader` to estimate",
    "LeafSpec",  # Lightning's own use of a deprecated torch pytree API
    "You are using a CUDA device",
)
TINY = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.log_every_n_steps=1",
]
ONE_SCREEN = 25


def _fit(tmp_path: Path, *args: str):
    runs = tmp_path / "runs"
    proc = run_cli("litvision", "fit", *TINY, *args, f"paths.runs_dir={runs}", env={"COLUMNS": "100"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (log,) = runs.glob("digits_cnn/*/train.log")
    return proc.stdout + proc.stderr, log.read_text()


def test_default_console_has_no_tips_and_fits_one_screen(tmp_path: Path) -> None:
    """Catches: quiet_console not entered (tips, GPU/TPU lines), the config tree printed without
    verbose, or the model summary's FLOPs table back on the console."""
    out, log = _fit(tmp_path)
    lines = out.splitlines()
    assert [t for t in TIPS if t in out] == [], out
    start = next(i for i, line in enumerate(lines) if line.startswith("Epoch "))
    assert start <= ONE_SCREEN, "\n".join(lines[:start])
    assert "_target_" not in out and "model: SmallCNN, 65.8 K parameters" in out
    assert "overrides trainer.max_epochs=1" in out and "run folder" in out
    # One results table at the end.
    assert out.count("best checkpoint") == 2 and "│ acc " in out  # table title, then its path line
    # Nothing is lost: the config, the model table and Lightning's notices are in train.log.
    assert "_target_: litvision.data.datasets.digits.DigitsDataModule" in log
    assert "Trainable params" in log and "GPU available: False" in log
    if shutil.which("srun"):
        assert "srun" in log


def test_verbose_shows_the_config_tree_and_model_table(tmp_path: Path) -> None:
    """Catches: verbose=true ignored (tree or table missing), or tips shown even with verbose."""
    out, _ = _fit(tmp_path, "verbose=true")
    assert "_target_: litvision.data.datasets.digits.DigitsDataModule" in out
    assert "Trainable params" in out and "Modules in train mode" in out
    assert "FLOPs" not in out and "Tip:" not in out and "GPU available" not in out


def test_early_stop_and_scaled_lr_are_said_when_they_happen(runs_dir: Path, capfd) -> None:
    """Catches: the scaled lr (tasks/optim) or early stopping ending the run (commands/fit) not
    printed, or printed at the wrong time (the lr before the first epoch, the stop after it)."""
    from litvision.train import train

    cfg = compose_cfg(
        [
            "trainer.max_epochs=4",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1",
            "trainer.limit_test_batches=1",
            "trainer.log_every_n_steps=1",
            "callbacks.rich_progress_bar=null",
            # val/acc must rise by 2 (never): the run stops after patience=1 validations.
            "callbacks.early_stopping.patience=1",
            "callbacks.early_stopping.min_delta=2.0",
            "scale_lr=linear",
            "base_batch_size=32",  # data.batch_size is 64 on one device: lr x2
        ],
        runs_dir,
    )
    summary = train(cfg)
    out = capfd.readouterr().out.splitlines()
    lr = [i for i, line in enumerate(out) if line.startswith("note: scale_lr=linear: lr x2 = default 0.006")]
    stop = [
        i for i, line in enumerate(out) if line.startswith("note: early stopping ended the run at epoch 1")
    ]
    assert len(lr) == 1 and len(stop) == 1, out
    assert "global batch 64 / base_batch_size 32" in out[lr[0]]
    assert lr[0] < stop[0] and summary["epochs_completed"] == 2


def test_generating_the_shapes_data_is_said_once(tmp_path: Path, capsys) -> None:
    """Catches: generating the shapes dataset silently (or saying so when it is already there)."""
    from litvision.data.datasets.shapes import ensure

    params = dict(num_train=2, num_val=1, num_test=1, image_size=32)
    ensure(tmp_path / "shapes", **params)
    first = capsys.readouterr().out
    assert f"note: generating the shapes dataset (4 images, 32 px) in {tmp_path / 'shapes'}" in first
    ensure(tmp_path / "shapes", **params)
    assert "generating" not in capsys.readouterr().out


@pytest.mark.parametrize("verbose", [False, True])
def test_quiet_console_restores_lightning_and_warnings(verbose: bool) -> None:
    """Catches: the console left quiet after a run (in-process callers, notebooks, tests)."""
    import logging
    import warnings

    import lightning  # noqa: F401  (installs its console handler)

    from litvision.utils.console import quiet_console

    handlers = logging.getLogger("lightning").handlers
    before = [(h.level, list(h.filters)) for h in handlers]
    show = warnings.showwarning
    with quiet_console(verbose):
        assert warnings.showwarning is not show
    assert warnings.showwarning is show
    assert [(h.level, list(h.filters)) for h in handlers] == before


def test_a_libraries_warning_goes_to_the_log_with_one_line_saying_so(tmp_path: Path) -> None:
    """Lightning warns when an epoch has fewer batches than its logging interval (2 < 10 here): the
    warning is in train.log, not on the console, which says in one line where it went.
    Catches: library warnings still shown (the site-packages test inverted), hidden with no trace
    (not written to the log, or the note line dropped)."""
    out, log = _fit(tmp_path, "trainer.log_every_n_steps=10")
    warning = "is smaller than the logging interval Trainer(log_every_n_steps=10)"
    assert warning not in out and warning in log
    [note] = [line for line in out.splitlines() if line.startswith("note: ") and "warning" in line]
    assert note.startswith("note: 1 warning from lightning is in ") and "train.log" in note, note


@pytest.mark.parametrize("verbose", [False, True])
def test_own_and_user_warnings_reach_the_console_library_ones_with_verbose(
    verbose: bool, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catches: litvision's own warnings (a clipped COCO box, a skipped image) or a user's callback's
    hidden with the libraries', or `verbose=true` not showing the libraries' any more."""
    import warnings

    from litvision.utils import console
    from litvision.utils.console import quiet_console

    shown: list[str] = []
    monkeypatch.setattr(warnings, "showwarning", lambda message, *a, **k: shown.append(str(message)))
    library = str(tmp_path / "lib" / "python3.11" / "site-packages" / "somelib" / "mod.py")
    own = str(Path(__import__("litvision").__file__).parent / "data" / "x.py")
    user = str(tmp_path / "my_callbacks.py")
    # litvision installed without -e: its own files are under site-packages too.
    installed = tmp_path / "lib" / "python3.11" / "site-packages" / "litvision"
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        with quiet_console(verbose):
            for n, where in enumerate((library, own, user)):
                warnings.warn_explicit(f"warning {n}", UserWarning, where, 1)
            monkeypatch.setattr(console, "_OWN_CODE", str(installed))
            warnings.warn_explicit("warning 3", UserWarning, str(installed / "data" / "x.py"), 1)
    assert shown == (["warning 0"] if verbose else []) + ["warning 1", "warning 2", "warning 3"]
    note = "note: 1 warning from somelib is in"
    assert (note in capsys.readouterr().out) != verbose
