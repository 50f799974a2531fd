"""Every experiment composes, instantiates, and runs one batch of train/val/test on fixture data."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import compose_cfg, offline_overrides

from litvision.config import experiment_names


def _data_choice(name: str, runs_dir: Path) -> str:
    from hydra.core.hydra_config import HydraConfig

    compose_cfg([f"experiment={name}"], runs_dir)
    return HydraConfig.get().runtime.choices["data"]


@pytest.mark.parametrize("name", experiment_names())
def test_experiment_composes_and_instantiates(name: str, runs_dir: Path, tmp_path: Path) -> None:
    from litvision.build import build_callbacks, build_datamodule, build_loggers, build_task, build_trainer
    from litvision.data.fixtures import fixture_maker

    cfg = compose_cfg([f"experiment={name}"], runs_dir)
    assert cfg.name == name, f"experiments/{name}.yaml must set name: {name}"
    assert cfg.description, f"experiments/{name}.yaml needs a one-line description"
    maker = fixture_maker(_data_choice(name, runs_dir))
    assert maker is not None, f"the data of {name} has no fixture in the data catalog"
    overrides = maker(tmp_path / "data")
    cfg = compose_cfg([f"experiment={name}", *overrides, *offline_overrides(cfg)], runs_dir)
    build_datamodule(cfg)
    build_task(cfg)
    build_trainer(cfg, callbacks=build_callbacks(cfg), loggers=build_loggers(cfg))


@pytest.mark.parametrize("name", experiment_names())
def test_experiment_fast_dev_run(name: str, runs_dir: Path, tmp_path: Path) -> None:
    from litvision.data.fixtures import fixture_maker
    from litvision.train import train

    # The dataset's catalog entry names its fixture; an unregistered data config is a UserError and a
    # dataset without a fixture fails here (test_data_catalog names it), instead of being skipped.
    maker = fixture_maker(_data_choice(name, runs_dir))
    assert maker is not None, f"the data of {name} has no fixture in the data catalog"
    overrides = maker(tmp_path / "data")
    overrides += offline_overrides(compose_cfg([f"experiment={name}"], runs_dir))
    cfg = compose_cfg([f"experiment={name}", "debug=fast_dev_run", *overrides], runs_dir)
    summary = train(cfg)
    assert summary["global_step"] == 1
    assert summary["test"], "fast_dev_run must run the test loop"
