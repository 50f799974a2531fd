"""W&B sweeps of a litvision experiment: write or check the sweep YAML, then hand it to `wandb agent`.

    make wandb-sweep EXP=digits_cnn                       # writes sweeps/digits_cnn.yaml if missing, checks it
    make wandb-sweep EXP=digits_cnn SWEEP=sweeps/my.yaml  # checks (or writes) that file
    wandb sweep sweeps/digits_cnn.yaml                    # online: registers it, prints the sweep id
    wandb agent <entity>/<project>/<sweep id>             # runs `python -m litvision.train experiment=... <params>`

The sweep's command is litvision's train entry with `${args_no_hyphens}`, so every swept
parameter reaches Hydra as an override (`model.optimizer.lr=0.003`), each run gets its own
run folder, and its W&B run takes the id the agent hands out (WANDB_RUN_ID).
A written sweep takes its search space from `configs/hparams_search/<exp>_optuna.yaml`
when there is one (the same space as the Optuna search), else the learning rate.
Checking is real and offline: the YAML's shape, and every parameter composed as a Hydra
override of the experiment, so a misspelled key fails here instead of in every agent run.
With an API key (and WANDB_MODE not offline) the sweep is also registered with W&B.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from litvision.errors import UserError

METHODS = ("grid", "random", "bayes")
TRAIN_MODULE = "litvision.train"


def _parse_sweep_value(key: str, value: str) -> Any:
    """An Optuna sweeper param string (`interval(1e-4, 1e-2)`, `choice(1, 2)`, `tag(log, ...)`) -> W&B spec."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    parsed = OverridesParser.create().parse_override(f"{key}={value}").value()
    if isinstance(parsed, ChoiceSweep):
        return {"values": list(parsed.list)}
    if isinstance(parsed, RangeSweep):
        return {"values": list(range(int(parsed.start), int(parsed.stop), int(parsed.step or 1)))}
    if isinstance(parsed, IntervalSweep):
        lo, hi = parsed.start, parsed.end
        if "log" in parsed.tags:
            return {"distribution": "log_uniform_values", "min": float(lo), "max": float(hi)}
        if isinstance(lo, int) and isinstance(hi, int):
            return {"distribution": "int_uniform", "min": lo, "max": hi}
        return {"distribution": "uniform", "min": float(lo), "max": float(hi)}
    return {"value": parsed}


def default_sweep(exp: str) -> dict[str, Any]:
    """A bayes sweep over the experiment's Optuna search space (or its learning rate)."""
    from omegaconf import OmegaConf

    from litvision.config import check_experiment, compose, config_dir

    check_experiment(exp)
    cfg = compose([f"experiment={exp}"])
    metric, goal = str(cfg.monitor), "maximize" if cfg.monitor_mode == "max" else "minimize"
    search = config_dir() / "hparams_search" / f"{exp}_optuna.yaml"
    if search.is_file():
        space = OmegaConf.load(search)
        params = OmegaConf.to_container(space.hydra.sweeper.params)
        parameters = {k: _parse_sweep_value(k, str(v)) for k, v in params.items()}
        metric = str(space.get("optimized_metric", metric))
        goal = "maximize" if space.hydra.sweeper.get("direction", "maximize") == "maximize" else "minimize"
    else:
        lr = float(cfg.model.optimizer.lr)
        parameters = {
            "model.optimizer.lr": {"distribution": "log_uniform_values", "min": lr / 10, "max": lr * 10}
        }
    return {
        "name": f"{exp}-sweep",
        "description": f"W&B sweep of litvision experiment {exp} (make wandb-sweep EXP={exp})",
        "program": TRAIN_MODULE,
        "method": "bayes",
        "metric": {"name": metric, "goal": goal},
        "parameters": parameters,
        # `wandb agent` runs this; ${args_no_hyphens} expands to `key=value` Hydra overrides.
        "command": [
            "${env}",
            "${interpreter}",
            "-m",
            TRAIN_MODULE,
            f"experiment={exp}",
            "${args_no_hyphens}",
        ],
    }


def _first_value(spec: dict[str, Any]) -> Any:
    if "values" in spec:
        return spec["values"][0]
    if "value" in spec:
        return spec["value"]
    return spec.get("min")


def check_sweep(sweep: Any, exp: str, source: str) -> None:
    """Raise UserError naming every problem of a sweep config meant to run `exp`."""
    from litvision.config import check_experiment, check_overrides

    check_experiment(exp)
    if not isinstance(sweep, dict):
        raise UserError(
            f"{source}: a W&B sweep file is a YAML mapping (method, metric, parameters, command)."
        )
    problems: list[str] = []
    if sweep.get("method") not in METHODS:
        problems.append(f"method: {sweep.get('method')!r} is not one of {', '.join(METHODS)}")
    metric = sweep.get("metric") or {}
    if sweep.get("method") == "bayes" and not metric.get("name"):
        problems.append("metric.name is needed for method: bayes (e.g. val/acc)")
    if metric and metric.get("goal", "minimize") not in ("maximize", "minimize"):
        problems.append(f"metric.goal: {metric.get('goal')!r} must be maximize or minimize")
    params = sweep.get("parameters")
    if not isinstance(params, dict) or not params:
        problems.append("parameters: needs at least one parameter (Hydra key -> values/min+max)")
        params = {}
    for key, spec in params.items():
        ok = isinstance(spec, dict) and ("values" in spec or "value" in spec or {"min", "max"} <= set(spec))
        if not ok:
            problems.append(f"parameters.{key}: give values: [...], value: x, or min and max")
    command = [str(c) for c in sweep.get("command") or []]
    if "${args_no_hyphens}" not in command:
        problems.append("command: must end with ${args_no_hyphens} so parameters reach Hydra as key=value")
    if TRAIN_MODULE not in command:
        problems.append(f"command: must run `-m {TRAIN_MODULE}` (litvision's train entry)")
    exps = [c.split("=", 1)[1] for c in command if c.startswith("experiment=")]
    if exps and exps[-1] != exp:
        problems.append(f"command runs experiment={exps[-1]} but EXP={exp}")
    if problems:
        raise UserError(f"{source}: " + "; ".join(problems) + ".")
    overrides = [f"experiment={exp}"] + [f"{k}={_first_value(v)}" for k, v in params.items()]
    try:
        check_overrides(overrides)
    except UserError as e:
        raise UserError(f"{source}: a parameter is not a key of experiment {exp}: {e}") from None


def load_or_write(exp: str, path: Path | None) -> tuple[dict[str, Any], Path, bool]:
    """The sweep at `path` (default sweeps/<exp>.yaml), written from `default_sweep` if missing."""
    from litvision.config import project_root

    path = path or project_root() / "sweeps" / f"{exp}.yaml"
    if path.is_file():
        try:
            sweep = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise UserError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
        return sweep, path, False
    sweep = default_sweep(exp)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# W&B sweep of {exp}: `wandb sweep {path.name}`, then `wandb agent <sweep id>`.\n"
    path.write_text(header + yaml.safe_dump(sweep, sort_keys=False))
    return sweep, path, True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m litvision.tracking.sweep", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--exp", required=True, help="experiment name (experiments/<exp>.yaml)")
    parser.add_argument("--sweep", type=Path, help="sweep YAML to check (written there if missing)")
    parser.add_argument("--project", help="W&B project (default: WANDB_PROJECT or litvision)")
    parser.add_argument("--entity", help="W&B entity (default: WANDB_ENTITY or your default entity)")
    args = parser.parse_args(argv)
    from litvision.errors import guarded

    sweep, path, written = guarded(load_or_write, args.exp, args.sweep)
    guarded(check_sweep, sweep, args.exp, str(path))
    print(
        f"{'wrote' if written else 'checked'} {path}: method={sweep['method']} "
        f"metric={sweep.get('metric', {}).get('name')} parameters={', '.join(sweep['parameters'])}"
    )

    import os

    from litvision.tracking.modes import resolve_mode

    project = args.project or os.environ.get("WANDB_PROJECT", "litvision")
    if resolve_mode(None) != "online":
        print(
            "W&B is offline here (no API key, or WANDB_MODE=offline), so the sweep is not registered. "
            f"Online, run:\n  wandb sweep --project {project} {path}\n"
            "  wandb agent <entity>/<project>/<sweep id>     # with litvision's Python first on PATH "
            "(e.g. `. .venv/bin/activate`)"
        )
        return
    import wandb

    sweep_id = wandb.sweep(sweep, project=project, entity=args.entity or os.environ.get("WANDB_ENTITY"))
    print(
        f"registered sweep {sweep_id}; start agents with:\n  wandb agent {args.entity + '/' if args.entity else ''}"
        f"{project}/{sweep_id}"
    )


if __name__ == "__main__":
    main()
