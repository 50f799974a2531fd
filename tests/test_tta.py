"""test_tta=hflip: test and predict average the softmax of each image and its mirror."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import compose_cfg
from torch import nn

from litvision.tasks.tta import predict_probabilities, tta_logits


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 6, 5)).eval()


def test_hflip_averages_the_softmax_of_image_and_mirror() -> None:
    """Catches: logits averaged instead of probabilities, or the flip on the wrong axis (H)."""
    net, x = _net(), torch.randn(2, 3, 4, 6)
    with torch.no_grad():
        expected = (net(x).softmax(-1) + net(x.flip(-1)).softmax(-1)) / 2
        torch.testing.assert_close(predict_probabilities(net, x, "hflip"), expected)
        torch.testing.assert_close(predict_probabilities(net, x, "none"), net(x).softmax(-1))
        # The TTA logits are log-probabilities: cross-entropy on them is the NLL of the averaged softmax.
        torch.testing.assert_close(tta_logits(net, x, "hflip").exp().sum(-1), torch.ones(2))


def test_mirror_symmetric_images_are_unchanged_by_hflip() -> None:
    """Catches: a view that is not the mirror (e.g. a transpose), which would change symmetric images."""
    net, x = _net(), torch.randn(2, 3, 4, 3)
    x = torch.cat([x, x.flip(-1)], dim=-1)
    with torch.no_grad():
        torch.testing.assert_close(predict_probabilities(net, x, "hflip"), net(x).softmax(-1))


def test_test_loop_uses_tta(runs_dir: Path) -> None:
    """Catches: test_tta not reaching the task's test step (test metrics from single views)."""
    from litvision.build import build_datamodule, build_task, build_trainer

    cfg = compose_cfg(["test_tta=hflip", "trainer.limit_test_batches=1", "logger=csv"], runs_dir)
    dm, task = build_datamodule(cfg), build_task(cfg)
    assert task.hparams.test_tta == "hflip"
    result = build_trainer(cfg).test(task, datamodule=dm, verbose=False)[0]
    x, y = next(iter(dm.test_dataloader()))
    task.eval()
    with torch.no_grad():
        tta_loss = F.nll_loss(predict_probabilities(task, x, "hflip").log(), y)
        plain_loss = F.cross_entropy(task(x), y)
    assert result["test/loss"] == pytest.approx(float(tta_loss), abs=1e-5)
    assert abs(float(tta_loss - plain_loss)) > 1e-4


def test_unknown_tta_mode_is_one_line(tmp_path: Path) -> None:
    """Catches: an unknown mode silently testing without TTA."""
    from litvision.build import build_task
    from litvision.errors import UserError
    from litvision.tasks.options import check_training_options

    cfg = compose_cfg(["test_tta=vflip"], tmp_path)
    for check in (check_training_options, build_task):
        with pytest.raises(UserError, match="test_tta='vflip'"):
            check(cfg)


def test_helpers_default_to_no_tta_and_refuse_an_unknown_mode() -> None:
    """Predict and export call the helpers directly, past the config checks. Catches (mutation
    testing's survivors): a default mode that is not "none" (refused, or another view), and
    tta_logits checking something other than the mode it was given (an unknown mode ran untested)."""
    from litvision.errors import UserError

    net, x = _net(), torch.randn(2, 3, 4, 6)
    with torch.no_grad():
        torch.testing.assert_close(tta_logits(net, x), net(x))
        torch.testing.assert_close(predict_probabilities(net, x), net(x).softmax(-1))
        for call in (tta_logits, predict_probabilities):
            with pytest.raises(UserError, match="vflip"):
                call(net, x, "vflip")
