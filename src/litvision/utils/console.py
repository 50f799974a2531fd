"""What a run prints: the config tree and start panel, and the final metrics table (rank zero only)."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.tree import Tree

_FIRST = ("data", "model", "trainer", "callbacks", "logger", "paths")


@rank_zero_only
def print_config_tree(cfg: DictConfig) -> None:
    tree = Tree("config", guide_style="dim")
    keys = [k for k in _FIRST if k in cfg] + [k for k in cfg if k not in _FIRST]
    for key in keys:
        value = cfg[key]
        branch = tree.add(f"[bold]{key}[/]")
        if isinstance(value, DictConfig):
            branch.add(OmegaConf.to_yaml(value, resolve=True).rstrip() or "{}")
        else:
            branch.add(repr(value))
    Console().print(tree)


@rank_zero_only
def print_start(cfg: DictConfig, run_dir: str) -> None:
    t = cfg.trainer
    lines = [
        f"[bold]experiment[/] {cfg.name}   [bold]seed[/] {cfg.seed}",
        f"[bold]data[/] {cfg.data._target_.rsplit('.', 1)[-1]}   [bold]model[/] "
        f"{cfg.model.get('net', {}).get('_target_', cfg.model._target_).rsplit('.', 1)[-1]}",
        f"[bold]trainer[/] {t.get('accelerator')} x{t.get('devices')}  nodes={t.get('num_nodes', 1)}  "
        f"precision={t.get('precision')}  max_epochs={t.get('max_epochs')}",
        f"[bold]run folder[/] {run_dir}",
    ]
    Console().print(Panel("\n".join(lines), title=f"litvision {cfg.task_name}", expand=False))


def _fmt(v: Any) -> str:
    return "" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


@rank_zero_only
def print_summary(summary: dict[str, Any]) -> None:
    val = {k.split("/", 1)[-1]: v for k, v in summary.get("best_val", {}).items()}
    test = {k.split("/", 1)[-1]: v for k, v in summary.get("test", {}).items()}
    table = Table(title=f"{summary.get('experiment')}: best checkpoint", title_justify="left")
    table.add_column("metric", style="bold")
    if val:
        table.add_column("val", justify="right")
    table.add_column("test", justify="right")
    for name in sorted(set(val) | set(test)):
        row = [name] + ([_fmt(val.get(name))] if val else []) + [_fmt(test.get(name))]
        table.add_row(*row)
    console = Console()
    console.print(table)
    console.print(f"[bold]run folder[/]: {summary.get('run_dir')}")
    if summary.get("best_checkpoint"):
        console.print(f"[bold]best checkpoint[/]: {summary['best_checkpoint']}")
    console.print(f"[bold]wall time[/]: {summary.get('wall_time_s', 0):.1f} s")
