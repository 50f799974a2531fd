"""RT-DETR, the optional transformers extra: one line naming the install command when it is missing,
and, where transformers is installed, training steps and pixel boxes through litvision's interface."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import one_line_refusal, run_cli


def test_missing_extra_is_one_line_naming_the_install(tmp_path: Path) -> None:
    """transformers made unimportable (a shadowing package that raises ImportError), the CLI refuses
    model=rtdetr in one line with `pip install -e ".[detr]"` and leaves no run folder.
    Catches: the ImportError escaping as a traceback, and the message naming no install command."""
    shadow = tmp_path / "shadow" / "transformers"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('transformers is not installed (test)')\n")
    runs = tmp_path / "runs"
    proc = run_cli(
        "litvision.train",
        "model=rtdetr",
        "data=shapes_voc",
        f"paths.runs_dir={runs}",
        f"paths.data_dir={tmp_path / 'data'}",
        env={"PYTHONPATH": str(tmp_path / "shadow")},
        timeout=600,
    )
    one_line_refusal(proc, 'pip install -e ".[detr]"', "rtdetr")
    assert not list(runs.glob("*/*")), "a refused run leaves no folder"


def test_trains_and_returns_pixel_boxes() -> None:
    """Catches: boxes handed to transformers in pixels instead of normalised cx, cy, w, h (the loss
    explodes), and predictions left normalised (all inside 1 px)."""
    pytest.importorskip("transformers")
    from omegaconf import OmegaConf

    from litvision.config import compose

    net_cfg = OmegaConf.to_container(compose(["model=rtdetr", "data=shapes_voc"]).model.net, resolve=True)
    net_cfg.pop("_target_")
    from litvision.models.detection.rtdetr import RTDETR

    torch.manual_seed(0)
    model = RTDETR(**{**net_cfg, "num_classes": 3, "image_size": 96}).train()
    images = [torch.rand(3, 96, 128), torch.rand(3, 128, 96)]
    targets = [
        {"boxes": torch.tensor([[10.0, 10, 70, 80]]), "labels": torch.tensor([2])},
        {"boxes": torch.tensor([[5.0, 5, 60, 60]]), "labels": torch.tensor([0])},
    ]
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    losses = []
    for _ in range(4):
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] < 200, losses
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert set(out[0]) == {"boxes", "scores", "labels"} and len(out[0]["boxes"]) > 0
    assert out[0]["boxes"][:, 2].max() > 2 and out[0]["boxes"][:, 2].max() <= 128
    assert int(out[0]["labels"].max()) < 3
