"""The EMA callback (litvision.tasks.ema) on a tiny in-process model, in about a second: what the average
covers (parameters and BatchNorm statistics), a resume that continues it exactly, a quiet checkpoint
load outside fit, and the decay refused outside (0, 1). The CLI-level checks on digits_cnn are in
tests/test_ema.py (its resume test is marked slow, so the mutation subset reaches resume only here)."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from litvision.tasks.ema import EMA

DECAY = 0.7


def _data() -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 4, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long())


class Tiny(L.LightningModule):
    """Linear + BatchNorm + Linear: parameters and running statistics to average."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test/loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.2, momentum=0.9)

    def train_dataloader(self):
        return DataLoader(_data(), batch_size=8)  # 3 steps an epoch, same order every epoch

    def test_dataloader(self):
        return DataLoader(_data(), batch_size=8)


class RawStates(Callback):
    """The raw (trained) floating-point state after every optimizer step: parameters and buffers."""

    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        self.steps.append(
            {k: v.detach().clone() for k, v in pl_module.state_dict().items() if v.is_floating_point()}
        )


def _trainer(tmp: Path, max_epochs: int, *callbacks: Callback) -> L.Trainer:
    return L.Trainer(
        default_root_dir=tmp,
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        deterministic=True,
        callbacks=list(callbacks),
    )


def _every_epoch(dirpath: Path) -> ModelCheckpoint:
    return ModelCheckpoint(dirpath=dirpath, filename="{epoch}", save_top_k=-1, every_n_epochs=1)


def test_the_average_covers_parameters_and_batchnorm_statistics(tmp_path: Path) -> None:
    """After fit the model holds, for every parameter and every BatchNorm running statistic, the EMA of the
    raw values over the optimizer steps with the decay given. Catches: buffers left out of the average
    (use_buffers=False/None: the BatchNorm statistics stay at their initial 0 and 1, which validation,
    test and the checkpoint then use); the average built with another decay."""
    torch.manual_seed(0)
    task, raw = Tiny(), RawStates()
    _trainer(tmp_path, 2, EMA(DECAY), raw).fit(task)
    assert len(raw.steps) == 6
    ema = dict(raw.steps[0])
    for step in raw.steps[1:]:
        ema = {k: DECAY * ema[k] + (1 - DECAY) * step[k] for k in ema}
    state = task.state_dict()
    assert {"net.1.running_mean", "net.1.running_var"} <= ema.keys()
    for k, v in ema.items():
        torch.testing.assert_close(state[k], v, rtol=0, atol=1e-6, msg=k)
    assert not torch.allclose(state["net.1.running_var"], raw.steps[-1]["net.1.running_var"])


def test_resume_continues_the_average_and_the_raw_weights(tmp_path: Path) -> None:
    """Fit 2 epochs, or fit 1 and resume its checkpoint for the second: the epoch-2 checkpoints hold the
    same EMA weights, raw weights, n_averaged and callback step. Catches: the EMA state not restored on
    resume (the average restarting from the raw weights, or training continuing from the EMA weights
    instead of the raw ones) and a resume that fails in the callback's checkpoint loading."""
    torch.manual_seed(0)
    _trainer(tmp_path, 2, EMA(DECAY), _every_epoch(tmp_path / "full")).fit(Tiny())
    torch.manual_seed(0)
    _trainer(tmp_path, 1, EMA(DECAY), _every_epoch(tmp_path / "part")).fit(Tiny())
    torch.manual_seed(1)  # a resume starts from another init: the checkpoint must replace all of it
    _trainer(tmp_path, 2, EMA(DECAY), _every_epoch(tmp_path / "part")).fit(
        Tiny(), ckpt_path=tmp_path / "part" / "epoch=0.ckpt"
    )
    full, resumed = (torch.load(tmp_path / d / "epoch=1.ckpt", weights_only=True) for d in ("full", "part"))
    assert int(full["averaging_state"]["n_averaged"]) == 6
    for key in ("state_dict", "current_model_state", "averaging_state"):
        assert full[key].keys() == resumed[key].keys()
        for k in full[key]:
            torch.testing.assert_close(resumed[key][k], full[key][k], rtol=0, atol=1e-7, msg=f"{key}[{k}]")
    assert any(
        not torch.equal(full["state_dict"][k], full["current_model_state"][k]) for k in full["state_dict"]
    )
    assert resumed["callbacks"]["EMA"] == full["callbacks"]["EMA"]


def test_testing_a_checkpoint_uses_its_ema_weights_quietly(tmp_path: Path) -> None:
    """`trainer.test(ckpt_path=...)` with the callback attached tests the checkpoint's state_dict (the EMA
    weights) and prints no warning. Lightning calls the callback's on_load_checkpoint there with no
    average to restore. Catches: the callback loading outside fit (Lightning's "loading a checkpoint
    outside the 'fit' stage" warning on every eval, or a crash), or the raw weights tested."""
    torch.manual_seed(0)
    _trainer(tmp_path, 1, EMA(DECAY), _every_epoch(tmp_path / "ckpt")).fit(Tiny())
    ckpt = tmp_path / "ckpt" / "epoch=0.ckpt"
    saved = torch.load(ckpt, weights_only=True)
    task = Tiny()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*WeightAveraging")
        [tested] = _trainer(tmp_path, 1, EMA(DECAY)).test(task, ckpt_path=ckpt, verbose=False)
    for k, v in saved["state_dict"].items():
        torch.testing.assert_close(task.state_dict()[k], v, rtol=0, atol=0, msg=k)
    task.load_state_dict(saved["current_model_state"])
    task.eval()
    x, y = _data().tensors
    with torch.no_grad():
        raw_loss = float(F.cross_entropy(task(x), y))
    assert tested["test/loss"] != pytest.approx(raw_loss, abs=1e-4)


@pytest.mark.parametrize("decay", [1.0, 0.0, 1.5, -0.1])
def test_the_callback_refuses_a_decay_outside_0_1(decay: float) -> None:
    """Added to a Trainer by hand (not through model.ema_decay), the callback still refuses a decay that is
    no average (0: the raw weights; 1: the weights never move) in one line. Catches: the check skipped or
    given another value."""
    from litvision.errors import UserError

    with pytest.raises(UserError, match=rf"model\.ema_decay={decay}") as e:
        EMA(decay)
    assert "\n" not in str(e.value)
