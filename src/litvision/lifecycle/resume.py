"""Resume semantics: an interrupted run continues with its own config; a finished one is forked.

    litvision fit resume=runs/digits_cnn/<stamp>                       # or .../checkpoints/last.ckpt
    litvision fit resume=runs/digits_cnn/<stamp> trainer.max_epochs=60  # extend: an allowed change
    litvision fit ckpt_path=runs/digits_cnn/<stamp>/checkpoints/last.ckpt   # the same, in place

Resuming composes the run's own command line (`.hydra/overrides.yaml`) with the new overrides and
compares the result, key by key, with the run's `config.yaml`. Only the keys in RESUME_MAY_CHANGE
may differ (how long to train, on which hardware, where to log); any other difference, including
one that comes from an experiment file edited since the run started, is refused in one line naming
the key and both values, so a run never continues with settings its folder does not record.
A difference no override on the line asked for (config.yaml edited by hand) is named as such, and
paths under a run folder that was moved or copied are read at its new place.

An extension (a finished run forked, or a resume given more epochs or steps) must train more than
its checkpoint has done (`check_extension`); early stopping then counts again from 0 with the
configured patience (callbacks/early_stopping.py) and the best checkpoint is the lineage's
(callbacks/checkpoint.py).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from litvision.errors import UserError
from litvision.utils.run import CONFIG_FILE, flatten

# Keys (and key prefixes) a resume may change. Everything else must equal the run's config.yaml.
RESUME_MAY_CHANGE: tuple[str, ...] = (
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.accelerator",
    "trainer.strategy",
    "trainer.enable_progress_bar",
    "data.num_workers",
    # What the console shows (the model summary callback prints; it changes no training).
    "verbose",
    "callbacks.model_summary",
    "logger",
    "paths",
    "callbacks.rich_progress_bar",
    "callbacks.model_checkpoint.last_every_n_train_steps",
    # How long to wait for an improvement: an extension may want more (or less) patience.
    "callbacks.early_stopping",
    "ckpt_path",
    "resume",
)

# Overrides that describe how a run was launched, not what it trains: never replayed on resume.
_NOT_REPLAYED = ("ckpt_path=", "resume=", "hydra.", "hydra/", "hparams_search=", "+hydra")


def replayable(overrides: list[str]) -> list[str]:
    return [o for o in overrides if not o.lstrip("+~").startswith(_NOT_REPLAYED)]


def _may_change(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in RESUME_MAY_CHANGE)


def changed_keys(saved: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (run's value, new value) for every leaf that differs."""
    a, b = flatten(saved), flatten(new)
    missing = object()
    out = {}
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, missing), b.get(key, missing)
        if va != vb:
            out[key] = (None if va is missing else va, None if vb is missing else vb)
    return out


def load_run_yaml(path: Path) -> Any:
    """A YAML file of a run folder; one line naming the file and the line if it is not valid YAML."""
    import yaml

    try:
        return OmegaConf.load(path)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        what = getattr(e, "problem", None) or type(e).__name__
        raise UserError(
            f"{path} is not valid YAML{where} ({what}); put back the file as the run wrote it "
            "(it records the run's settings), or start a new run from its weights with "
            "model.net.weights=<checkpoint>."
        ) from None


def _moved(key: str, old: Any, new: Any, saved: dict[str, Any], now: dict[str, Any]) -> bool:
    """A path under the run folder's old place, now the same path under its new place (the
    folder was moved or copied): not a change of settings."""
    a, b = saved.get("paths.output_dir"), now.get("paths.output_dir")
    if not (isinstance(old, str) and isinstance(new, str) and isinstance(a, str) and isinstance(b, str)):
        return False
    a, b = a.rstrip("/"), b.rstrip("/")
    return a != b and (old == a or old.startswith(a + "/")) and new == b + old[len(a) :]


def _given(key: str, given: list[str]) -> bool:
    """Whether an override on this command line sets `key` (or a group or node above it)."""
    for o in given:
        name = o.lstrip("+~").split("=", 1)[0].replace("/", ".")
        if name == "experiment" or key == name or key.startswith(name + "."):
            return True
    return False


def check_resume_changes(
    run: Path, cfg: DictConfig, given: list[str] | None = None
) -> dict[str, tuple[Any, Any]]:
    """Refuse a resume whose config differs from the run's outside RESUME_MAY_CHANGE; return the
    changes. `given`: this command line's overrides, to tell a change asked for from one that
    comes from the run's files (config.yaml edited by hand, an experiment file changed since)."""
    saved_path = run / CONFIG_FILE
    if not saved_path.is_file():
        return {}
    saved = OmegaConf.to_container(load_run_yaml(saved_path), resolve=False)
    new = OmegaConf.to_container(cfg, resolve=True)
    changes = changed_keys(saved, new)  # type: ignore[arg-type]
    flat_saved, flat_new = flatten(saved), flatten(new)  # type: ignore[arg-type]
    refused = {
        k: v
        for k, v in changes.items()
        if not _may_change(k) and not _moved(k, v[0], v[1], flat_saved, flat_new)
    }
    if refused:
        key, (old, now) = next(iter(refused.items()))
        more = f" (and {len(refused) - 1} more key(s))" if len(refused) > 1 else ""
        if given is not None and not _given(key, given):
            raise UserError(_not_asked_for(run, key, old, now, more))
        raise UserError(
            f"Resuming {run} would change {key} from {old!r} to {now!r}{more}; a resume keeps the run's "
            f"own config except {', '.join(RESUME_MAY_CHANGE[:7])}, logger and paths. Drop that override, "
            "or start a new run from its weights with model.net.weights=<checkpoint>."
        )
    return {k: v for k, v in changes.items() if k not in ("ckpt_path", "resume")}


def _not_asked_for(run: Path, key: str, old: Any, now: Any, more: str) -> str:
    """A difference no override on this line asked for: config.yaml edited by hand (the run's
    composed .hydra/config.yaml still agrees with the command line) or a config file changed."""
    first = (
        f"Resuming {run}: its {CONFIG_FILE} has {key}={old!r} but the run's own command line now "
        f"composes {now!r}{more}"
    )
    _missing = object()
    composed: Any = _missing
    # An unreadable or unresolvable composed config: the message names the other possibility.
    with contextlib.suppress(Exception):
        composed = OmegaConf.select(OmegaConf.load(run / ".hydra" / CONFIG_FILE), key, default=_missing)
    if composed is not _missing and composed == now:
        return (
            f"{first}: {CONFIG_FILE} was edited by hand (no override given changes it); put back "
            f"{key}: {now!r} in {run / CONFIG_FILE}, or start a new run from its weights with "
            "model.net.weights=<checkpoint>."
        )
    return (
        f"{first}: a config or experiment file changed since the run started (no override given "
        f"changes it); put back {key}: {old!r} there, or start a new run from its weights with "
        "model.net.weights=<checkpoint>."
    )


def progress(checkpoint: dict[str, Any]) -> tuple[int, int]:
    """(epochs, optimizer steps) a checkpoint has fully trained.

    Lightning counts an epoch as `processed` once its training part is done, which an end-of-epoch
    `last.ckpt` has and a mid-epoch one (every N steps, max_steps) does not."""
    steps = int(checkpoint.get("global_step") or 0)
    loops = checkpoint.get("loops") or {}
    epochs = (((loops.get("fit_loop") or {}).get("epoch_progress") or {}).get("current") or {}).get(
        "processed"
    )
    return (int(epochs) if epochs is not None else int(checkpoint.get("epoch") or 0)), steps


def check_extension(checkpoint: dict[str, Any], cfg: DictConfig, source: Path | str) -> None:
    """An extension must train more than its checkpoint has done: one line naming what is done."""
    trainer = cfg.get("trainer") or {}
    max_steps = trainer.get("max_steps", -1)
    max_epochs = trainer.get("max_epochs")
    if max_epochs is None:  # Lightning's default: 1000 epochs unless max_steps is set
        max_epochs = 1000 if max_steps in (None, -1) else -1
    epochs, steps = progress(checkpoint)
    done = f"{source} has done {epochs} epoch{'s' if epochs != 1 else ''} ({steps} steps)"
    if max_epochs not in (None, -1) and max_epochs <= epochs:
        raise UserError(
            f"trainer.max_epochs={max_epochs} trains nothing more: {done}; extend it with "
            f"trainer.max_epochs=<more than {epochs}>."
        )
    if max_steps not in (None, -1) and max_steps <= steps:
        raise UserError(
            f"trainer.max_steps={max_steps} trains nothing more: {done}; extend it with "
            f"trainer.max_steps=<more than {steps}> (or -1: no step limit)."
        )
