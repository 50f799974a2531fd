"""A checkpoint written before the classifiers moved into `models/classification/` still loads.

Today's main records its network as `_target_: litvision.models.cnn.SmallCNN` (in the checkpoint's
hyper-parameters and in its `litvision` provenance record); this branch's configs name
`litvision.models.classification.cnn.SmallCNN`. The checkpoint here is the one this branch writes with
those two strings set back to main's, which is all that differs between the two.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import compose_cfg, run_cli, run_folders

OLD = "litvision.models.cnn.SmallCNN"
NEW = "litvision.models.classification.cnn.SmallCNN"
OVERRIDES = [
    "experiment=digits_cnn",
    "debug=limit",
    "trainer.max_epochs=1",
    "model.net.width=8",
    "logger=csv",
]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from litvision.train import train

    tmp = tmp_path_factory.mktemp("legacy")
    summary = train(compose_cfg(OVERRIDES, tmp / "runs"))
    ckpt = torch.load(summary["best_checkpoint"], map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["net"]["_target_"] == NEW and ckpt["litvision"]["net"] == NEW
    ckpt["hyper_parameters"]["net"]["_target_"] = OLD
    ckpt["litvision"]["net"] = OLD
    # Outside any run folder: `test` composes the experiment's current config, with the new target.
    old_path = tmp / "main" / "digits_cnn.ckpt"
    old_path.parent.mkdir()
    torch.save(ckpt, old_path)
    return {"summary": summary, "old": old_path, "new": Path(summary["best_checkpoint"]), "tmp": tmp}


def test_todays_checkpoint_tests_to_the_same_metrics(checkpoints: dict) -> None:
    """Catches: the checkpoint refused as "another network" (check_compatible comparing raw target
    strings), and only one side of that comparison mapped (the checkpoint's, not the config's)."""
    runs = checkpoints["tmp"] / "eval_runs"
    run_cli(
        "litvision",
        "test",
        f"ckpt_path={checkpoints['old']}",
        *OVERRIDES,
        f"paths.runs_dir={runs}",
        check=True,
    )
    (eval_run,) = run_folders(runs)
    tested = json.loads((eval_run / "summary.json").read_text())["test"]
    for key, value in checkpoints["summary"]["test"].items():
        assert tested[key] == pytest.approx(value, abs=1e-6), key


def test_todays_checkpoint_rebuilds_the_same_network(checkpoints: dict) -> None:
    """Catches: the old module path no longer resolving (models.__getattr__ removed), and the raw
    target comparison in check_compatible, in the in-process path predict and export use (load_task)."""
    from litvision.config import compose
    from litvision.tasks.restore import load_task
    from litvision.utils.safe_load import check_compatible, load_checkpoint

    cfg = compose(OVERRIDES)
    old, new = load_checkpoint(checkpoints["old"]), load_checkpoint(checkpoints["new"])
    check_compatible(old, cfg, checkpoints["old"])
    (old_task, kind), (new_task, _) = (
        load_task(old, checkpoints["old"], cfg),
        load_task(new, checkpoints["new"], cfg),
    )
    assert kind == "classification" and type(old_task.net).__name__ == "SmallCNN"
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(old_task(x), new_task(x), rtol=0, atol=0)
