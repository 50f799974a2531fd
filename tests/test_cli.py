"""Bad input is rejected in one line before any run folder exists; listing and help work."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli

from litvision.config import experiment_names


def _assert_clean_error(proc, runs: Path, *needles: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not runs.exists() or not any(runs.iterdir()), "a rejected command must not create a run folder"


@pytest.mark.parametrize("module", ["litvision.train", "litvision.eval"])
def test_unknown_experiment_lists_the_available_ones(module: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    proc = run_cli(module, "experiment=digits_cnnn", "ckpt_path=x.ckpt", f"paths.runs_dir={runs}")
    _assert_clean_error(proc, runs, "digits_cnnn", *experiment_names())


def test_misspelled_key_names_the_key(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    proc = run_cli("litvision.train", "trainer.max_epoch=3", f"paths.runs_dir={runs}")
    _assert_clean_error(proc, runs, "trainer.max_epoch")


def test_unknown_group_option(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    proc = run_cli("litvision.train", "trainer=tpu_pod", f"paths.runs_dir={runs}")
    _assert_clean_error(proc, runs, "tpu_pod")


@pytest.mark.parametrize("module", ["litvision.train", "litvision.eval"])
def test_missing_checkpoint(module: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    proc = run_cli(module, f"ckpt_path={tmp_path / 'nope.ckpt'}", f"paths.runs_dir={runs}")
    _assert_clean_error(proc, runs, "nope.ckpt")


def test_eval_without_checkpoint(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    proc = run_cli("litvision.eval", "experiment=digits_cnn", f"paths.runs_dir={runs}")
    _assert_clean_error(proc, runs, "CKPT")


def test_list_shows_every_experiment_with_its_description() -> None:
    from litvision.config import experiment_descriptions

    proc = run_cli("litvision", "list", check=True)
    text = " ".join(proc.stdout.split())
    for name, desc in experiment_descriptions().items():
        assert name in text
        assert " ".join(desc.split()[:3]) in text


def test_train_help_does_not_train(tmp_path: Path) -> None:
    proc = run_cli("litvision.train", "--help", check=True)
    assert "usage: litvision fit" in proc.stdout and "experiment" in proc.stdout
