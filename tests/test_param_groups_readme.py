"""The README's per-group learning-rate line composes as written and the run trains those groups.

`model.param_groups` is null in every model config, so its groups are new keys: the README's
line adds them with `+` (Hydra refuses new keys without it, in struct mode).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from conftest import ROOT, compose_cfg


def readme_param_groups_line() -> tuple[str, list[str]]:
    """(EXP, the ARGS overrides) of the README's `make train ... model.param_groups...` line."""
    lines = [
        line
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("make train") and "param_groups" in line
    ]
    assert len(lines) == 1, lines
    words = shlex.split(lines[0].split("#", 1)[0])
    exp = next(w.split("=", 1)[1] for w in words if w.startswith("EXP="))
    args = next(w.split("=", 1)[1] for w in words if w.startswith("ARGS="))
    return exp, args.split()


def test_readme_param_groups_line_builds_its_groups(tmp_path: Path) -> None:
    """Catches: the README's line refused at composition (keys without `+`), or groups that compose
    but never reach the optimizer (the head would train at the default rate)."""
    from lightning.pytorch.callbacks import Callback

    from litvision.build import build_callbacks, build_datamodule, build_task, build_trainer
    from litvision.data.fixtures import fixture_maker
    from litvision.models.weights import pretrained_overrides

    exp, args = readme_param_groups_line()
    assert any(re.match(r"\+?model\.param_groups\.head\.lr=0\.01$", a) for a in args), args
    data = fixture_maker("flowers")(tmp_path / "data")
    base = [f"experiment={exp}", *args, *data]
    cfg = compose_cfg(base, tmp_path / "runs")  # the line exactly as written (plus the fixture data)
    assert cfg.model.param_groups.head.prefixes == ["fc"] and cfg.model.param_groups.head.lr == 0.01
    small = ["debug=fast_dev_run", "data.image_size=32", "data.resize_size=36", "callbacks=none"]
    cfg = compose_cfg([*base, *pretrained_overrides(cfg), *small], tmp_path / "runs")

    seen: dict[str, float] = {}

    class Groups(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            seen.update({g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups})

    task = build_task(cfg)
    trainer = build_trainer(cfg, callbacks=[*build_callbacks(cfg), Groups()], loggers=[])
    trainer.fit(task, datamodule=build_datamodule(cfg))
    default_lr = cfg.model.optimizer.lr
    assert seen["head"] == pytest.approx(0.01) and seen["default"] == pytest.approx(default_lr)
    head = {
        id(p) for g in trainer.optimizers[0].param_groups if g["name"].startswith("head") for p in g["params"]
    }
    assert {n for n, p in task.net.named_parameters() if id(p) in head} == {
        n for n, _ in task.net.named_parameters() if n.startswith("fc.")
    }
