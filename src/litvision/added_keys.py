"""`+key=value` overrides: a key the config does not have is accepted only if something reads it.

Hydra adds any `+key` without complaint; nothing in litvision would read `+foo=1` (a full run
trains while the key does nothing), and `+trainer.max_epoch=2` (Hydra's own hint for a typo)
reaches Lightning's Trainer as an unknown argument after the run folder exists. A new key is
read when it lands in one of these places:

- an argument of the object its node builds: the node's `_target_` (a class or function) names
  it, or takes `**kwargs` that reach code that reads it (followed through a class's bases);
  e.g. `+trainer.detect_anomaly=true`, `+model.net.attn_drop_rate=0.1` on a timm model (its **kwargs);
- a new entry of a collection the run builds from whatever it holds: `+callbacks.<name>._target_=...`
  and `+logger.<name>._target_=...` (its other keys are then that target's arguments);
- a free-form map a component reads: `model.param_groups.<group>.{prefixes,lr,lr_scale,weight_decay}`
  (tasks/optim.build_param_groups), `tune.<option>` (litvision tune checks the option names);
- `extra.<anything>`: read by nothing, recorded in the run's config.yaml: the documented place
  for notes and keys of your own.

Anything else is refused in one line, with the nearest existing key when there is one.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from litvision.errors import UserError

#: Free notes: recorded with the run, read by no component.
EXTRA = "extra"
#: Hydra's own keys in a node that `instantiate` reads.
_HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}
#: Maps of named entries, each built from its `_target_` (build.py instantiates every value).
_COLLECTIONS = ("callbacks", "logger")
_PARAM_GROUP_KEYS = ("prefixes", "lr", "lr_scale", "weight_decay")


def added_keys(overrides: list[str], group_exists: Callable[[str], bool]) -> list[str]:
    """The dotted keys that `+key=` / `++key=` overrides name (config groups and hydra.* left out)."""
    out = []
    for o in overrides:
        if not o.startswith("+") or "=" not in o:
            continue
        key = o.lstrip("+").split("=", 1)[0].strip()
        if not key or "/" in key or "@" in key or key.startswith("hydra.") or key == "hydra":
            continue
        if group_exists(key):  # +experiment=x, +hparams_search=y: a config group, not a key
            continue
        out.append(key)
    return out


_ABSENT = object()


def _walk(cfg: Any, parts: list[str]) -> Any:
    """The raw node at `parts` (unresolved), or _ABSENT when a part is not there."""
    from omegaconf import DictConfig

    node = cfg
    for p in parts:
        if not isinstance(node, DictConfig) or p not in node:
            return _ABSENT
        node = node._get_node(p)
    return node


def _node(cfg: Any, parts: list[str]) -> Any:
    """The node at `parts` (a DictConfig, a leaf's value, or None), unresolved; None if absent."""
    from omegaconf import DictConfig

    node = _walk(cfg, parts)
    if node is _ABSENT:
        return None
    return node if isinstance(node, DictConfig) else getattr(node, "_value", lambda: node)()


def _exists(cfg: Any, parts: list[str]) -> bool:
    return _walk(cfg, parts) is not _ABSENT


def _target_reads(target: str, name: str) -> bool | None:
    """Whether building `target` reads an argument `name`; None when that cannot be told (the
    target does not load, or has no signature): then `instantiate` has the last word."""
    from hydra.utils import get_object

    try:
        obj = get_object(target)
        params = inspect.signature(obj).parameters
    except Exception:
        return None
    if _names(params, name):
        return True
    if not _takes_kwargs(params):
        return False
    if not inspect.isclass(obj):  # a function's **kwargs: passed on to what it builds (timm)
        return True
    # A class taking **kwargs passes them to its bases: one of their __init__s must name it.
    for cls in obj.__mro__[1:]:
        if cls is object:
            return False
        if "__init__" not in vars(cls):
            continue
        try:
            base = inspect.signature(cls.__init__).parameters
        except (TypeError, ValueError):
            return None
        if _names(base, name):
            return True
        if not _takes_kwargs(base):
            return False
    return False


def _names(params: Any, name: str) -> bool:
    return name in params and params[name].kind not in (params[name].VAR_POSITIONAL, params[name].VAR_KEYWORD)


def _takes_kwargs(params: Any) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in params.values())


def _params_of(target: str) -> list[str]:
    from hydra.utils import get_object

    try:
        return [p for p in inspect.signature(get_object(target)).parameters if not p.startswith("_")]
    except Exception:
        return []


def check_added_keys(cfg: Any, base: Any, keys: list[str]) -> None:
    """Refuse (one line) the first added key that nothing reads.

    `cfg` is the config as composed, `base` the same command line without the `+` keys, which
    tells where each new key starts: `+model.param_groups.head.lr` starts at `head` when
    `model.param_groups` exists.
    """
    for key in keys:
        parts = key.split(".")
        if parts[0] == EXTRA:
            continue
        if _exists(base, parts):
            continue  # ++key= of an existing key: a plain override
        depth = 0  # how many leading parts exist in the config without the + keys
        while depth < len(parts) and _exists(base, parts[: depth + 1]):
            depth += 1
        where, new = parts[:depth], parts[depth]
        rest = parts[depth + 1 :]
        node = _node(cfg, where) if where else cfg
        reason = _why_not_read(node, where, new, rest, cfg)
        if reason is None:
            continue
        # The misspelt part and the names it may take: a new callback's argument, or the key itself.
        entry = _node(cfg, [*where, new]) if ".".join(where) in _COLLECTIONS and rest else None
        if entry is not None:
            at, wrong, after = [*where, new], rest[0], rest[1:]
            names = _params_of(str(entry.get("_target_"))) if entry.get("_target_") else []
        elif where == ["model", "param_groups"] and rest:  # a new group's misspelt key
            at, wrong, after = [*where, new], rest[0], rest[1:]
            names = list(_PARAM_GROUP_KEYS)
        else:
            at, wrong, after = where, new, rest
            names = _readable(_node(base, where) if where else base, where)
        close = difflib.get_close_matches(wrong, [n for n in names if n != wrong], n=1, cutoff=0.75)
        if close:
            raise UserError(f"Unknown config key '{key}': did you mean {'.'.join([*at, close[0], *after])}?")
        raise UserError(
            f"Unknown config key '+{key}': {reason}. Check the spelling (`litvision fit --cfg` prints "
            f"every key); keep notes of your own under {EXTRA}., e.g. '+{EXTRA}.{parts[-1]}=...'."
        )


def _readable(node: Any, where: list[str]) -> list[str]:
    """The names a key under `where` may have: the keys there and its target's arguments."""
    from omegaconf import DictConfig

    if where[:2] == ["model", "param_groups"] and len(where) == 3:
        return list(_PARAM_GROUP_KEYS)
    if not isinstance(node, DictConfig):
        return []
    names = [str(k) for k in node]
    target = node.get("_target_")
    return names + (_params_of(str(target)) if target else [])


def _why_not_read(node: Any, where: list[str], new: str, rest: list[str], cfg: Any) -> str | None:
    """None when `new` (under `where`, with `rest` below it) is read; else why it is not."""
    from omegaconf import DictConfig

    path = ".".join(where)
    if path == "model.param_groups":
        if not rest:
            return None if isinstance(_node(cfg, [*where, new]), DictConfig) else "a group needs keys"
        ok = rest[0] in _PARAM_GROUP_KEYS
        return None if ok else f"a parameter group takes {', '.join(_PARAM_GROUP_KEYS)}"
    if where[:2] == ["model", "param_groups"] and len(where) == 3:
        return None if new in _PARAM_GROUP_KEYS else f"a parameter group takes {', '.join(_PARAM_GROUP_KEYS)}"
    if path == "tune" or (not where and new == "tune"):
        return None  # litvision tune refuses an unknown tune.<option> itself (tuning.check_tunable)
    if path in _COLLECTIONS:
        entry = _node(cfg, [*where, new])
        target = entry.get("_target_") if isinstance(entry, DictConfig) else None
        if not target:
            return f"a new {path} entry needs its class: '+{path}.{new}._target_=<module.Class>'"
        if rest and rest[0] not in _HYDRA_KEYS and _target_reads(str(target), rest[0]) is False:
            return f"{target} takes no argument '{rest[0]}'"
        return None
    if not isinstance(node, DictConfig):
        return "nothing reads keys below it"
    target = node.get("_target_")
    if new in _HYDRA_KEYS and target:
        return None
    if target:
        reads = _target_reads(str(target), new)
        return None if reads in (True, None) else f"{target} takes no argument '{new}'"
    if not where:
        return "no part of litvision reads it"
    return f"{'.'.join(where)} is read key by key and has no '{new}'"
