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


def test_plus_key_nothing_reads_is_refused(tmp_path: Path) -> None:
    """`+foo=1` is refused in one line, nothing written (catches: added_keys' check skipped in compose_checked)."""
    runs = tmp_path / "runs"
    proc = run_cli("litvision.train", "+foo=1", f"paths.runs_dir={runs}")
    _assert_clean_error(proc, runs, "'+foo'", "no part of litvision reads it", "+extra.foo=")


def test_plus_typo_points_at_the_existing_key(tmp_path: Path) -> None:
    """Hydra's '+key' hint for a typo leads to the real key (catches: Trainer's signature not consulted)."""
    runs = tmp_path / "runs"
    proc = run_cli("litvision.train", "+trainer.max_epoch=2", f"paths.runs_dir={runs}")
    _assert_clean_error(proc, runs, "did you mean trainer.max_epochs?")


@pytest.mark.parametrize(
    "overrides",
    [
        ["+trainer.detect_anomaly=false"],  # a Trainer argument the config does not list
        ["+model.param_groups.head.prefixes=[head]", "+model.param_groups.head.lr=0.01"],
        ["+extra.note=baseline"],  # the documented place for keys nothing reads
        [
            "+callbacks.stop._target_=lightning.pytorch.callbacks.EarlyStopping",
            "+callbacks.stop.monitor=val/loss",
        ],
        ["experiment=vit_flowers", "+model.net.attn_drop_rate=0.1"],  # timm_model's **kwargs reach timm
        ["+tune.max_trials=3"],  # litvision tune's own options (it checks their names)
    ],
)
def test_plus_keys_a_component_reads_compose(overrides: list[str]) -> None:
    """Keys read by their target (or a free-form map) are accepted (catches: every new key refused)."""
    from omegaconf import OmegaConf

    from litvision.config import compose_checked

    cfg = compose_checked(overrides)
    for o in overrides:
        key, value = o.lstrip("+").split("=", 1)
        if "." in key and not key.startswith("experiment"):
            assert OmegaConf.select(cfg, key) is not None, key


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["+model.optimizer.momentum=0.9"], "torch.optim.AdamW takes no argument 'momentum'"),
        (["+data.foo=1"], "DigitsDataModule takes no argument 'foo'"),
        (["+model.scheduler.warmup_epoch=2"], "did you mean model.scheduler.warmup_epochs?"),
        (["+model.param_groups.head.rate=0.01"], "a parameter group takes prefixes, lr"),
        (["+model.param_groups.head.lrr=0.01"], "did you mean model.param_groups.head.lr?"),
        (
            [
                "+callbacks.stop._target_=lightning.pytorch.callbacks.EarlyStopping",
                "+callbacks.stop.monitr=x",
            ],
            "did you mean callbacks.stop.monitor?",
        ),
        (["+callbacks.stop.monitor=val/loss"], "needs its class"),
    ],
)
def test_plus_keys_nothing_reads_are_refused(overrides: list[str], needle: str) -> None:
    """Each unread new key gets its reason in one line (catches: **kwargs or sibling names misjudged)."""
    from litvision.config import compose_checked
    from litvision.errors import UserError

    with pytest.raises(UserError) as err:
        compose_checked(overrides)
    assert needle in str(err.value) and "\n" not in str(err.value), str(err.value)


@pytest.mark.parametrize("command", ["list", "fit --help", "export --help"])
def test_output_cut_short_by_a_pipe_is_not_an_error(command: str) -> None:
    """`litvision list | head -1`: the reader leaves early. Catches a BrokenPipeError traceback on stderr
    (from the print, or from Python's flush of stdout at exit)."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200"}
    proc = subprocess.run(
        # `true` exits at once: the write finds the pipe closed (head may have read it all first).
        f"{sys.executable} -m litvision {command} | true",
        shell=True,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stderr == "", proc.stderr[-2000:]
