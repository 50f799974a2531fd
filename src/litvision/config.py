"""Where configs and experiments live, and composing them without running anything.

Nothing here imports torch: `litvision list` and the CLI's override checks stay fast.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from litvision.errors import UserError


def project_root() -> Path:
    """The folder holding `configs/` and `experiments/` (the repository root)."""
    env = os.environ.get("LITVISION_ROOT")
    if env:
        root = Path(env).resolve()
        if (root / "configs" / "train.yaml").is_file():
            return root
        raise UserError(
            f"LITVISION_ROOT={env} has no configs/train.yaml; point it at the litvision checkout."
        )
    here = Path(__file__).resolve().parents[2]
    if (here / "configs" / "train.yaml").is_file():
        return here
    raise UserError(
        "Cannot find litvision's configs/ folder; install litvision from its checkout "
        "(`pip install -e .`) or set LITVISION_ROOT to the checkout."
    )


def config_dir() -> Path:
    return project_root() / "configs"


def experiments_dir() -> Path:
    return project_root() / "experiments"


def experiment_names() -> list[str]:
    return sorted(p.stem for p in experiments_dir().glob("*.yaml"))


def experiment_descriptions() -> dict[str, str]:
    """Experiment name -> its one-line `description:` (plain YAML read, no composition)."""
    import yaml

    out: dict[str, str] = {}
    for name in experiment_names():
        with open(experiments_dir() / f"{name}.yaml") as f:
            data = yaml.safe_load(f) or {}
        out[name] = str(data.get("description", "")).strip()
    return out


def check_experiment(name: str) -> None:
    names = experiment_names()
    if name not in names:
        raise UserError(f"Unknown experiment '{name}'. Available: {', '.join(names)} (see `make list`).")


def compose(overrides: list[str] | None = None, config_name: str = "train", job_name: str | None = None):
    """Compose the config a command would run, with Hydra's runtime config set.

    The run folder (`hydra.run.dir`, with its `${now:...}` stamp) is resolved here, once: every
    later read of `paths.output_dir` and Lightning's DDP workers (which receive `hydra.run.dir`)
    see the same folder. `${hydra:...}` interpolations resolve as in a Hydra app.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict, read_write

    from litvision.data.pipeline.resolvers import register_resolvers

    register_resolvers()
    os.environ.setdefault("LITVISION_ROOT", str(project_root()))
    GlobalHydra.instance().clear()
    with initialize_config_dir(
        config_dir=str(config_dir()), version_base="1.3", job_name=job_name or config_name
    ):
        cfg = hydra_compose(
            config_name=config_name, overrides=list(overrides or []), return_hydra_config=True
        )
    with read_write(cfg.hydra):
        run_dir = str(cfg.hydra.run.dir)
        cfg.hydra.run.dir = run_dir
        cfg.hydra.runtime.output_dir = run_dir
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def compose_checked(overrides: list[str], config_name: str = "train"):
    """Compose once; Hydra's and OmegaConf's errors become one line naming the key."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from litvision.errors import find_user_error

    try:
        cfg = compose(overrides, config_name)
    except (HydraException, OmegaConfBaseException) as e:
        line = _one_line(e)
        hint = quoting_hint(e, overrides)
        if hint:
            raise UserError(f"{line.split(' See https://hydra.cc')[0]}. {hint}") from None
        typo = re.match(r"Unknown config key '([^']+)'", line)
        close = _close_key(typo.group(1), overrides, config_name) if typo else None
        if close:
            line = f"Unknown config key '{typo.group(1)}': did you mean {close}?"
        raise (find_user_error(e) or UserError(line)) from None
    _check_added(cfg, overrides, config_name)
    return cfg


def _parses(override: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        OverridesParser.create().parse_overrides([override])
        return True
    except HydraException:
        return False


def _quoted(key: str, value: str) -> str | None:
    """`key='value'` as Hydra reads a quoted string (its grammar: quoted values are taken as they
    are, spaces, brackets and commas included), shown inside the shell's quotes; None if no form parses."""
    for q, shell in (("'", '"'), ('"', "'")):
        if q in value or shell in value:
            continue
        candidate = f"{key}={q}{value}{q}"
        if _parses(candidate):
            return f"{shell}{candidate}{shell}"
    return None


def quoting_hint(e: BaseException, overrides: list[str]) -> str | None:
    """When Hydra's override lexer fails on a value with spaces: how to quote it.

    Two ways it happens: the shell split an unquoted path at its spaces (`input=/my photos` arrives
    as `input=/my` and `photos`, and Hydra stops at `photos`: "missing EQUAL"), or the value reached
    Hydra whole but holds characters its grammar reads as syntax (`input=/data/my photos (1)`).
    """
    from hydra.errors import OverrideParseException

    bad = getattr(e, "override", None) if isinstance(e, OverrideParseException) else None
    if not bad or bad not in overrides:
        return None
    i = overrides.index(bad)
    if "=" not in bad:
        start = i
        while start > 0 and "=" not in overrides[start - 1]:
            start -= 1
        if start == 0:
            return None
        end = i
        while end + 1 < len(overrides) and "=" not in overrides[end + 1]:
            end += 1
        key, _, head = overrides[start - 1].partition("=")
        value = " ".join([head, *overrides[start : end + 1]])
        fix = _quoted(key, value)
        if fix is None:
            return None
        return (
            f"'{bad}' is not key=value: if it is part of {key}'s value (a path with spaces that the shell split), "
            f"quote the whole override: {fix}"
        )
    key, _, value = bad.partition("=")
    if " " not in value:
        return None
    fix = _quoted(key.strip(), value)
    if fix is None:
        return None
    return (
        f"The value of {key.strip()} holds spaces and characters Hydra's override grammar reads as "
        f"syntax; quote the value for Hydra, inside the shell's quotes: {fix}"
    )


def _check_added(cfg, overrides: list[str], config_name: str) -> None:
    """`+key=` overrides must name keys that something reads (litvision.added_keys)."""
    from hydra.core.hydra_config import HydraConfig

    from litvision.added_keys import added_keys, check_added_keys

    keys = added_keys(overrides, lambda key: (config_dir() / key).is_dir())
    if not keys:
        return

    # The same command line without the new keys (nor overrides below them) shows where each
    # new key starts. Composing again must not change the run folder HydraConfig now holds.
    def _under(o: str) -> bool:
        k = o.lstrip("+~").split("=", 1)[0]
        return any(k == a or k.startswith(a + ".") for a in keys)

    held = HydraConfig.instance().cfg
    try:
        base = compose([o for o in overrides if not _under(o)], config_name)
    except Exception:  # the rest does not compose alone: nothing to compare with, Hydra's checks stand
        return
    finally:
        HydraConfig.instance().cfg = held
    check_added_keys(cfg, base, keys)


def _close_key(key: str, overrides: list[str], config_name: str) -> str | None:
    """The existing key closest to a misspelled one (trainer.max_epoch -> trainer.max_epochs)."""
    import difflib

    from omegaconf import OmegaConf

    from litvision.utils.run import flatten

    rest = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] != key]
    try:
        cfg = compose(rest, config_name)
    except Exception:  # the typo's neighbours are broken too: no suggestion, the plain line stands
        return None
    keys = list(flatten(OmegaConf.to_container(cfg, resolve=False)))
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.8)
    return close[0] if close else None


def check_overrides(overrides: list[str], config_name: str = "train") -> None:
    """A typo fails here, in one line, before any run folder exists (tools that only check)."""
    compose_checked(overrides, config_name)


def _one_line(e: BaseException) -> str:
    msg = str(e)
    key = None
    # Hydra keeps the offending key in the wrapped OmegaConf error's text.
    details = "\n".join(str(c) for c in (e.__cause__, e.__context__) if c is not None)
    for line in (msg + "\n" + details).splitlines():
        line = line.strip()
        if line.startswith("full_key:"):
            key = line.split(":", 1)[1].strip()
    overridden = re.search(r"Could not override '([^']+)'", msg)
    if overridden:  # the key as the user typed it (full_key may name only its first unknown part)
        key = overridden.group(1)
    if ("Could not override" in msg or "is not in struct" in msg) and key:
        return (
            f"Unknown config key '{key}': check its spelling (`litvision fit --cfg` prints every key), "
            f"or add a key a component reads with '+{key}=...'."
        )
    if "Could not find" in msg:
        return (
            msg.splitlines()[0].replace("In 'train': ", "").replace("In 'eval': ", "")
            + " (check the group and option name)."
        )
    if "Missing mandatory value" in msg and key:
        return f"Config key '{key}' has no value: set it on the command line, e.g. '{key}=...'."
    return " ".join(line.strip() for line in msg.splitlines() if line.strip())
