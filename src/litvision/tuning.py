"""Find a batch size and a learning rate before training: Lightning's Tuner on one device.

    run_tune(cfg, run_dir)   # cfg composed as for `train`; returns what summary.json should hold

1. Batch-size finder (`Tuner.scale_batch_size`, mode "power"): doubles `data.batch_size` from its
   configured value, a few steps per trial, until memory runs out or the batch outgrows the training
   split; keeps the largest that ran. Skipped on a CPU, in one line: nothing runs out of memory
   there, so it would only double up to `tune.max_trials` and call that an answer.
2. LR finder (`Tuner.lr_find`), at the batch size found: the LR range test (Smith, "Cyclical
   Learning Rates for Training Neural Networks", WACV 2017, section 3.3), an exponential sweep of the
   learning rate over `tune.num_training` steps from `tune.min_lr` to `tune.max_lr`, one rate for
   every parameter group. The suggestion (`tune.lr_rule`):
   - "minimum" (default): the rate at the lowest smoothed loss, divided by 10: fastai's `minimum`
     suggestion (fastai.callback.schedule.minimum, "one tenth of the minimum before divergence");
   - "steepest": Lightning's `_LRFinder.suggestion()`, the steepest descent of the smoothed loss.
   Lightning's steepest descent is taken against the rate itself, not its log, so it lands where the
   rate is tiny and the loss still flat: on digits_cnn it said 6.3e-05 at batch 64 (and 1.1e-05 at
   the finder's batch 2048) where the recipe's 3e-3 reaches 99.4%; see docs/predict.md
   for the runs behind the default. The plot is `lr_find.png` in the run folder.

The findings end the output as overrides to paste after `litvision fit` (also `overrides` in
summary.json).

Optional keys (`+tune.<key>=...` on the command line while `tune` is not in the config):
batch_size (true), lr_find (true), min_lr (1e-7), max_lr (1.0), num_training (100),
max_trials (6), steps_per_trial (3), mode ("power" | "binsearch"), lr_rule ("minimum" | "steepest").

Lightning's finders run in one process; under DDP (several devices or nodes, a ddp strategy) the
command refuses in one line before building anything: tune on one device, then scale the rate
with `scale_lr`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from litvision.errors import UserError
from litvision.lifecycle.spec import Command

LR_PLOT = "lr_find.png"
DEFAULTS: dict[str, Any] = {
    "batch_size": True,
    "lr_find": True,
    "min_lr": 1e-7,
    "max_lr": 1.0,
    "num_training": 100,
    "max_trials": 6,
    "steps_per_trial": 3,
    "mode": "power",
    "lr_rule": "minimum",
}
LR_RULES = ("minimum", "steepest")


def _several(value: Any) -> bool:
    """True when a devices/num_nodes value asks for more than one (ints, "4", -1 = all, [0, 1])."""
    if isinstance(value, (list, tuple)) or (hasattr(value, "__len__") and not isinstance(value, str)):
        return len(value) > 1
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text) > 1 or int(text) == -1
    if "," in text:
        return len([v for v in text.split(",") if v.strip()]) > 1
    return False


def check_tunable(cfg: DictConfig) -> None:
    """Refuse DDP configs (one line) before anything is built or written."""
    trainer = cfg.get("trainer") or {}
    strategy = str(trainer.get("strategy", "auto") or "auto").lower()
    why = None
    if _several(trainer.get("devices", 1)):
        why = f"trainer.devices={trainer.get('devices')}"
    elif _several(trainer.get("num_nodes", 1)):
        why = f"trainer.num_nodes={trainer.get('num_nodes')}"
    elif "ddp" in strategy or "fsdp" in strategy or "deepspeed" in strategy:
        why = f"trainer.strategy={trainer.get('strategy')}"
    if why:
        raise UserError(
            f"tune runs on one device, but {why} asks for several processes (Lightning's LR and "
            "batch-size finders are single-process); use trainer.devices=1 trainer.num_nodes=1 "
            "trainer.strategy=auto, then train at scale with scale_lr=linear."
        )
    options = {**DEFAULTS, **dict(cfg.get("tune") or {})}
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise UserError(f"tune.{unknown[0]} is not a tune option; use one of {', '.join(DEFAULTS)}.")
    if options["mode"] not in ("power", "binsearch"):
        raise UserError(f"tune.mode={options['mode']!r} must be power or binsearch.")
    if options["lr_rule"] not in LR_RULES:
        raise UserError(f"tune.lr_rule={options['lr_rule']!r} must be minimum or steepest.")
    if not 0 < float(options["min_lr"]) < float(options["max_lr"]):
        raise UserError(
            f"tune.min_lr={options['min_lr']} and tune.max_lr={options['max_lr']} must satisfy 0 < min_lr < max_lr."
        )


def _options(cfg: DictConfig) -> dict[str, Any]:
    return {**DEFAULTS, **dict(cfg.get("tune") or {})}


def _configured_lr(cfg: DictConfig) -> float | None:
    lr = (cfg.get("model") or {}).get("optimizer", {}).get("lr")
    return float(lr) if lr is not None else None


def run_tune(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Batch-size then LR finder on one device; writes `lr_find.png` in run_dir, returns the findings."""
    import lightning as L
    from omegaconf import OmegaConf

    from litvision.build import build_datamodule, build_task, build_trainer

    check_tunable(cfg)
    opts = _options(cfg)
    OmegaConf.resolve(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg)
    task = build_task(cfg)
    # No checkpoints, logs or early stopping: the finders fit for a few steps and restore the weights
    # from a temporary checkpoint, which goes in the run folder like everything else.
    cfg.trainer.default_root_dir = str(run_dir)
    trainer = build_trainer(cfg, callbacks=[], loggers=[])
    if trainer.world_size > 1 or trainer.num_devices * trainer.num_nodes > 1:
        raise UserError(
            f"tune runs on one device, but the Trainer found {trainer.num_devices} devices on "
            f"{trainer.num_nodes} node(s) (trainer.devices={cfg.trainer.get('devices')}); set trainer.devices=1."
        )
    from lightning.pytorch.tuner import Tuner

    tuner = Tuner(trainer)
    out: dict[str, Any] = {"task": "tune", "world_size": 1}
    initial = int(cfg.data.batch_size)
    device = trainer.strategy.root_device
    if opts["batch_size"] and device.type == "cpu":
        # Memory never runs out on a CPU: the finder would only double up to max_trials and call
        # that an answer. Keep the configured batch, say so in one line.
        print(
            f"batch size: the batch-size finder is skipped on a CPU (nothing runs out of memory); kept data.batch_size={initial}."
        )
        out["batch_size"] = {"initial": initial, "found": None, "skipped": "cpu", "device": str(device)}
    elif opts["batch_size"]:
        found = tuner.scale_batch_size(
            task,
            datamodule=datamodule,
            mode=opts["mode"],
            init_val=initial,
            max_trials=int(opts["max_trials"]),
            steps_per_trial=int(opts["steps_per_trial"]),
        )
        out["batch_size"] = {
            "initial": initial,
            "found": int(found) if found is not None else None,
            "mode": opts["mode"],
            "max_trials": int(opts["max_trials"]),
            "device": str(device),
        }
    if opts["lr_find"]:
        with _bar_only_on_a_terminal():
            finder = tuner.lr_find(
                task,
                datamodule=datamodule,
                min_lr=float(opts["min_lr"]),
                max_lr=float(opts["max_lr"]),
                num_training=int(opts["num_training"]),
                update_attr=False,
            )
        suggestion = suggest_lr(finder.results, opts["lr_rule"]) if finder is not None else None
        plot = None
        if finder is not None:
            plot = run_dir / LR_PLOT
            lr_figure(finder.results, suggestion, _configured_lr(cfg)).savefig(
                plot, dpi=100, bbox_inches="tight"
            )
        results = finder.results if finder is not None else {"lr": [], "loss": []}
        out["lr_find"] = {
            "suggestion": float(suggestion) if suggestion is not None else None,
            "rule": opts["lr_rule"],
            "configured_lr": _configured_lr(cfg),
            "min_lr": float(opts["min_lr"]),
            "max_lr": float(opts["max_lr"]),
            "steps": len(results.get("lr", [])),
            "batch_size": int(getattr(datamodule, "batch_size", None) or datamodule.hparams.batch_size),
            "plot": str(plot) if plot else None,
        }
    overrides = []
    if out.get("batch_size", {}).get("found"):
        overrides.append(f"data.batch_size={out['batch_size']['found']}")
    if out.get("lr_find", {}).get("suggestion"):
        overrides.append(f"model.optimizer.lr={out['lr_find']['suggestion']:.3g}")
    # What to add to `litvision train` to use the findings.
    out["overrides"] = " ".join(overrides)
    return out


# What `_LRFinder.suggestion` leaves out by default: its first 10 points and the last one. The first
# ones also carry Lightning's smoothing start-up (the running mean is bias-corrected one step late).
SKIP_BEGIN, SKIP_END = 10, 1


def suggest_lr(results: dict[str, list[float]], rule: str = "minimum") -> float | None:
    """The learning rate to train with, from the finder's (lr, smoothed loss) curve; None when the
    curve is too short or not finite."""
    import math

    lrs, losses = results.get("lr", []), results.get("loss", [])
    end = len(lrs) - SKIP_END
    points = [
        (lr, loss) for lr, loss in zip(lrs[SKIP_BEGIN:end], losses[SKIP_BEGIN:end]) if math.isfinite(loss)
    ]
    if len(points) < 2:
        return None
    if rule == "minimum":
        # fastai's "minimum": a tenth of the rate at the lowest loss, an order of magnitude back from
        # where the loss stops falling and starts to diverge.
        return min(points, key=lambda p: p[1])[0] / 10
    import torch

    # Lightning's own rule, on the same trimmed curve (its `suggestion()` skips the same points).
    lr_t, loss_t = torch.tensor([p[0] for p in points]), torch.tensor([p[1] for p in points])
    return float(lr_t[int(torch.argmin(torch.gradient(loss_t, spacing=[lr_t])[0]))])


@contextmanager
def _bar_only_on_a_terminal() -> Iterator[None]:
    """Lightning's LR finder always opens a tqdm bar; in a log file (a pipe, SLURM) each update is a
    carriage-return line. tqdm's `disable=None` turns the bar off when the output is not a terminal."""
    from functools import partial

    from lightning.pytorch.tuner import lr_finder

    plain = lr_finder.tqdm
    lr_finder.tqdm = partial(plain, disable=None)
    try:
        yield
    finally:
        lr_finder.tqdm = plain


def print_report(summary: dict[str, Any]) -> None:
    """What tune found, ending with the overrides to paste after `litvision fit`."""
    lines = []
    bs = summary.get("batch_size") or {}
    if bs.get("found"):
        lines.append(
            f"batch size: {bs['found']} (from {bs['initial']}, {bs.get('mode')} search on {bs.get('device')})"
        )
    lr = summary.get("lr_find") or {}
    if lr.get("suggestion"):
        configured = f", configured {lr['configured_lr']:.3g}" if lr.get("configured_lr") else ""
        lines.append(
            f"learning rate: {lr['suggestion']:.3g} (rule {lr.get('rule')}, {lr['steps']} steps at batch "
            f"{lr['batch_size']}{configured}); plot: {lr.get('plot')}"
        )
    elif "lr_find" in summary:
        lines.append("learning rate: no suggestion (the loss curve was too short; raise tune.num_training)")
    lines.append(f"run folder: {summary.get('run_dir')}")
    overrides = summary.get("overrides")
    lines.append(
        f"train with: litvision fit experiment={summary.get('experiment')} {overrides}"
        if overrides
        else "nothing to change"
    )
    print("\n".join(lines))


def lr_figure(results: dict[str, list[float]], suggestion: float | None, configured: float | None) -> Any:
    """Smoothed loss against learning rate (log scale), the suggestion and the configured rate marked."""
    from matplotlib.figure import Figure

    lrs, losses = results.get("lr", []), results.get("loss", [])
    end = len(lrs) - SKIP_END
    lrs, losses = (lrs[SKIP_BEGIN:end], losses[SKIP_BEGIN:end]) if end > SKIP_BEGIN + 1 else (lrs, losses)
    fig = Figure(figsize=(6, 4.5))
    ax = fig.subplots()
    ax.plot(lrs, losses)
    ax.set_xscale("log")
    if suggestion is not None:
        ax.axvline(suggestion, color="red", linestyle="--", label=f"suggestion {suggestion:.3g}")
    if configured is not None:
        ax.axvline(configured, color="grey", linestyle=":", label=f"configured {configured:.3g}")
    ax.set(xlabel="learning rate", ylabel="training loss (smoothed)", title="LR finder")
    if suggestion is not None or configured is not None:
        ax.legend()
    fig.tight_layout()
    return fig


def run(session: Any) -> dict[str, Any]:
    """The lifecycle's entry (`litvision tune`): tune into the session's run folder."""
    return run_tune(session.cfg, session.run_dir)


#: `litvision tune`: runs/<experiment>/tune/<stamp>/, with the training config (configs/train.yaml).
COMMAND = Command(
    "tune",
    "train",
    run,
    run_dir="${paths.runs_dir}/${name}/tune/${now:%Y-%m-%d_%H-%M-%S-%f}",
    precheck=check_tunable,
    report=print_report,
)
