"""Resume semantics: an interrupted run continues with its own config; a finished one is forked.

    litvision fit resume=runs/digits_cnn/<stamp>                       # or .../checkpoints/last.ckpt
    litvision fit resume=runs/digits_cnn/<stamp> trainer.max_epochs=60  # extend: an allowed change
    litvision fit ckpt_path=runs/digits_cnn/<stamp>/checkpoints/last.ckpt   # the same, in place

Resuming composes the run's own command line (`.hydra/overrides.yaml`) with the new overrides and
compares the result, key by key, with the run's `config.yaml`. Only the keys in RESUME_MAY_CHANGE
may differ (how long to train, on which hardware, where to log); any other difference, including
one that comes from an experiment file edited since the run started, is refused in one line naming
the key and both values, so a run never continues with settings its folder does not record.
"""

from __future__ import annotations

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


def check_resume_changes(run: Path, cfg: DictConfig) -> dict[str, tuple[Any, Any]]:
    """Refuse a resume whose config differs from the run's outside RESUME_MAY_CHANGE; return the changes."""
    saved_path = run / CONFIG_FILE
    if not saved_path.is_file():
        return {}
    saved = OmegaConf.to_container(OmegaConf.load(saved_path), resolve=False)
    new = OmegaConf.to_container(cfg, resolve=True)
    changes = changed_keys(saved, new)  # type: ignore[arg-type]
    refused = {k: v for k, v in changes.items() if not _may_change(k)}
    if refused:
        key, (old, now) = next(iter(refused.items()))
        more = f" (and {len(refused) - 1} more key(s))" if len(refused) > 1 else ""
        raise UserError(
            f"Resuming {run} would change {key} from {old!r} to {now!r}{more}; a resume keeps the run's "
            f"own config except {', '.join(RESUME_MAY_CHANGE[:7])}, logger and paths. Drop that override, "
            "or start a new run from its weights with model.net.weights=<checkpoint>."
        )
    return {k: v for k, v in changes.items() if k not in ("ckpt_path", "resume")}
