"""What a command works with: the validated config, its run folder, the checkpoint to start from,
and the objects built from the config, each built once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict


class Session:
    def __init__(
        self, cfg: DictConfig, run_dir: Path, ckpt_path: str | None, rank_zero: bool, extending: bool = False
    ) -> None:
        self.cfg = cfg
        #: This run extends an earlier one (a fork of a finished run, or a resume given more epochs
        #: or steps): early stopping starts counting again.
        self.extending = extending
        self.run_dir = run_dir
        self.ckpt_path = ckpt_path
        self.rank_zero = rank_zero
        self._built: dict[str, Any] = {}
        self._after: list[Callable[[dict[str, Any]], None]] = []
        #: An artifact command's folder (lifecycle.spec.ArtifactFolder), made by the command.
        self.artifact: Any = None

    def _once(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._built:
            self._built[key] = make()
        return self._built[key]

    def datamodule(self) -> Any:
        from litvision.build import build_datamodule

        return self._once("datamodule", lambda: build_datamodule(self.cfg))

    def trainer(self, callbacks: list[Any] | None = None) -> Any:
        """The Trainer; `callbacks=None`: the config's, plus the pruning callback of an Optuna trial."""
        from litvision.build import build_callbacks, build_trainer
        from litvision.lifecycle.optuna_study import pruning_callback

        def make() -> Any:
            chosen = callbacks
            if chosen is None:
                chosen = build_callbacks(self.cfg)
                pruner = pruning_callback(self.cfg)  # a trial of an Optuna sweep with a pruner
                if pruner is not None:
                    chosen.append(pruner)
            return build_trainer(self.cfg, callbacks=chosen)

        return self._once("trainer", make)

    def task(self, pretrained: bool = True) -> Any:
        """The task; `pretrained=False` when a checkpoint will supply every weight (nothing is fetched)."""
        from litvision.build import build_task

        def make() -> Any:
            cfg = self.cfg
            if not pretrained and cfg.model.get("net") is not None:
                from litvision.models.weights import without_pretrained

                cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
                with open_dict(cfg):
                    cfg.model.net = without_pretrained(cfg.model.net)
            return build_task(cfg)

        return self._once("task", make)

    @property
    def is_global_zero(self) -> bool:
        trainer = self._built.get("trainer")
        return bool(trainer.is_global_zero) if trainer is not None else self.rank_zero

    def after_run(self, fn: Callable[[dict[str, Any]], None]) -> None:
        """Run `fn(summary)` once the summary is written (finish loggers, release DDP workers)."""
        self._after.append(fn)

    def finish(self, summary: dict[str, Any]) -> None:
        for fn in self._after:
            fn(summary)
