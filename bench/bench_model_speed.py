"""Size and speed of every classification and detection net at its experiment's input size.

    python -m bench model_speed                                   # every experiment
    MODEL_SPEED_ONLY=digits_cnn,yolov1_shapes python -m bench model_speed

For each distinct network (experiments sharing a net, its freezing and input size are measured once):
parameters (all and trainable), GFLOPs of one image's forward pass in eval mode as counted by
torch.utils.flop_counter.FlopCounterMode (2 FLOPs per multiply-add; detectors' NMS and other
non-matmul/conv work are not counted), inference images/s (eval, inference_mode) and training
images/s (forward, loss, backward, SGD step on the trainable parameters; detectors on two random
boxes per image). Pretrained weights are off (same architecture, random init: speed does not depend
on the values). Input: the experiment's `data.image_size` (a {min_size, max_size} resize becomes a
4:3 image at min_size, the shape of most VOC/COCO photos after the detector's resize).

On a CPU the batches and timed iterations are small (the numbers are for comparing nets with each
other on this machine, not for capacity planning); on a GPU they are larger and synchronised.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Any

# Two detection images at least: SSDlite's head normalises 1x1 maps, which BatchNorm cannot train on one.
CPU = {"cls_batch": 8, "det_batch": 2, "warmup": 1, "min_time_s": 1.0, "max_iters": 10}
GPU = {"cls_batch": 64, "det_batch": 4, "warmup": 5, "min_time_s": 2.0, "max_iters": 100}


def _input_shape(cfg: Any) -> tuple[int, int, int]:
    """(C, H, W) the experiment feeds its net."""
    import importlib

    from omegaconf import OmegaConf

    size = OmegaConf.select(cfg, "data.image_size")
    if size is None:  # data whose size is fixed (the 8x8 digits) says so on its class
        module, _, name = str(cfg.data._target_).rpartition(".")
        size = getattr(importlib.import_module(module), name).image_size
    if isinstance(size, int):
        h = w = size
    elif OmegaConf.is_dict(size) or isinstance(size, dict):
        h = int(size["min_size"])
        w = round(h * 4 / 3)
        if size.get("max_size"):
            w = min(w, int(size["max_size"]))
    else:
        h, w = (int(v) for v in size)
    channels = OmegaConf.select(cfg, "data.in_channels") or 3
    return int(channels), h, w


def _timed(fn: Any, settings: dict[str, Any], sync: Any) -> tuple[float, int]:
    for _ in range(settings["warmup"]):
        fn()
    sync()
    iters, start = 0, time.perf_counter()
    while True:
        fn()
        iters += 1
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= settings["min_time_s"] or iters >= settings["max_iters"]:
            return elapsed, iters


def _targets(n: int, h: int, w: int, num_classes: int, device: Any) -> list[dict[str, Any]]:
    import torch

    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        xy = torch.rand(2, 2, generator=g) * torch.tensor([w * 0.6, h * 0.6])
        wh = (0.2 + 0.3 * torch.rand(2, 2, generator=g)) * torch.tensor([w, h])
        boxes = torch.cat([xy, xy + wh], 1)
        labels = torch.randint(0, num_classes, (2,), generator=g)
        out.append({"boxes": boxes.to(device), "labels": labels.to(device)})
    return out


def measure(
    task: Any, shape: tuple[int, int, int], detection: bool, settings: dict[str, Any]
) -> dict[str, Any]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    net = task.net.to(device)
    c, h, w = shape
    batch = settings["det_batch"] if detection else settings["cls_batch"]
    gen = torch.Generator().manual_seed(0)
    if detection:
        images = [torch.rand(c, h, w, generator=gen).to(device) for _ in range(batch)]
        targets = _targets(batch, h, w, task.num_classes, device)
        one = images[:1]
    else:
        images = torch.randn(batch, c, h, w, generator=gen).to(device)
        labels = torch.randint(0, task.num_classes, (batch,), generator=gen).to(device)
        one = images[:1]

    task.eval()
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        net(one)
    gflops = counter.get_total_flops() / 1e9

    def infer() -> None:
        with torch.inference_mode():
            net(images)

    t_inf, n_inf = _timed(infer, settings, sync)

    task.train()
    trainable = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(trainable, lr=1e-6)

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        if detection:
            loss = torch.stack(list(net(images, targets).values())).sum()
        else:
            loss = torch.nn.functional.cross_entropy(net(images), labels)
        loss.backward()
        opt.step()

    t_train, n_train = _timed(train_step, settings, sync)
    return {
        "params_m": round(sum(p.numel() for p in net.parameters()) / 1e6, 3),
        "trainable_params_m": round(sum(p.numel() for p in trainable) / 1e6, 3),
        "gflops": round(gflops, 3),
        "batch": batch,
        "infer_images_per_s": round(batch * n_inf / t_inf, 2),
        "infer_iters": n_inf,
        "train_images_per_s": round(batch * n_train / t_train, 2),
        "train_iters": n_train,
    }


def _experiments() -> list[str]:
    from litvision.config import experiment_names

    only = [n.strip() for n in os.environ.get("MODEL_SPEED_ONLY", "").split(",") if n.strip()]
    names = experiment_names()
    unknown = sorted(set(only) - set(names))
    if unknown:
        raise SystemExit(f"MODEL_SPEED_ONLY names unknown experiments {unknown}; available: {names}")
    return only or names


def run() -> dict:
    import lightning as L
    import torch
    from omegaconf import OmegaConf

    from litvision.build import build_task
    from litvision.config import compose
    from litvision.models.weights import pretrained_overrides

    settings = GPU if torch.cuda.is_available() else CPU
    groups: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in _experiments():
            base = [f"experiment={name}", f"paths.runs_dir={tmp}"]
            cfg = compose(base)
            cfg = compose(base + pretrained_overrides(cfg))
            OmegaConf.resolve(cfg)
            shape = _input_shape(cfg)
            detection = str(cfg.model._target_).endswith("DetectionTask")
            key = json.dumps(
                [OmegaConf.to_container(cfg.model.net), OmegaConf.select(cfg, "model.freeze"), shape],
                sort_keys=True,
                default=str,
            )
            if key in groups:
                groups[key]["experiments"].append(name)
                continue
            L.seed_everything(0, verbose=False)
            task = build_task(cfg)
            net_cfg = cfg.model.net
            arch = net_cfg.get("arch") or net_cfg.get("name") or str(net_cfg._target_).rsplit(".", 1)[-1]
            if net_cfg.get("backbone"):
                arch = f"{arch} ({net_cfg.backbone})"
            print(f"  {name}: {arch} at {shape}", flush=True)
            started = time.time()
            row = {
                "experiments": [name],
                "net": str(arch),
                "task": "detection" if detection else "classification",
                "input_chw": list(shape),
            }
            try:
                row.update(measure(task, shape, detection, settings))
            except (RuntimeError, ValueError) as e:  # one net failing (e.g. out of memory) keeps the others
                row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            row["measure_s"] = round(time.time() - started, 1)
            groups[key] = row
            del task
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "device": device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "settings": settings,
        "models": list(groups.values()),
    }
