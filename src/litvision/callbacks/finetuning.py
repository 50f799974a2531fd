"""Train the head first, then unfreeze the backbone with its own learning rate.

    make train EXP=resnet50_flowers_unfreeze
    make train EXP=resnet50_flowers ARGS="callbacks=[default,unfreeze] callbacks.unfreeze.unfreeze_at_epoch=3"

Built on Lightning's `BaseFinetuning`, which also records the added parameter group in
checkpoints so that a resumed run has it again. The new group is named (default
"backbone", plus "backbone/no_decay" for biases and norms) so that the LR monitor logs
`lr-SGD/backbone`. It follows the task's warm-up/decay schedule from the step it joins.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BaseFinetuning
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from litvision.errors import UserError
from litvision.models.heads import head_prefixes, is_head_param
from litvision.tasks.finetune import sync_batchnorm_modes

log = logging.getLogger(__name__)


class UnfreezeBackbone(BaseFinetuning):
    """Freeze everything but the head; at `unfreeze_at_epoch`, unfreeze the backbone.

    Args:
        unfreeze_at_epoch: the first epoch (0-based) that trains the backbone.
        backbone_lr: its learning rate (times scale_lr's factor, like every group); if null,
            `lr_scale` x the head's initial learning rate.
        lr_scale: see `backbone_lr` (0.1: the backbone learns ten times slower than the head).
        last_stages: unfreeze only the last k top-level modules of the backbone (for a
            ResNet, 1 = layer4, 2 = layer3 + layer4); null unfreezes all of it.
        modules: explicit module prefixes to unfreeze instead (e.g. [blocks.10, blocks.11, norm]).
        train_bn: whether the unfrozen BatchNorm layers train (affine parameters and running stats).
        weight_decay: for the new group; null takes the optimizer's default.
        group_name: the new parameter group's name, as the LR monitor shows it.
    """

    def __init__(
        self,
        unfreeze_at_epoch: int = 5,
        backbone_lr: float | None = None,
        lr_scale: float = 0.1,
        last_stages: int | None = None,
        modules: Sequence[str] | None = None,
        train_bn: bool = True,
        weight_decay: float | None = None,
        group_name: str = "backbone",
    ) -> None:
        super().__init__()
        self.unfreeze_at_epoch = unfreeze_at_epoch
        self.backbone_lr = backbone_lr
        self.lr_scale = lr_scale
        self.last_stages = last_stages
        self.modules = list(modules) if modules else None
        self.train_bn = train_bn
        self.weight_decay = weight_decay
        self.group_name = group_name

    @staticmethod
    def _net(pl_module: L.LightningModule) -> nn.Module:
        return getattr(pl_module, "net", pl_module)

    def freeze_before_training(self, pl_module: L.LightningModule) -> None:
        net = self._net(pl_module)
        heads = head_prefixes(net)
        for name, p in net.named_parameters():
            p.requires_grad = is_head_param(name, heads)
        sync_batchnorm_modes(net)

    def backbone_modules(self, net: nn.Module) -> list[nn.Module]:
        """The modules this callback unfreezes."""
        heads = head_prefixes(net)
        if self.modules:
            try:
                return [net.get_submodule(m) for m in self.modules]
            except AttributeError as e:
                top = [n for n, _ in net.named_children()]
                raise UserError(
                    f"callbacks.unfreeze.modules: {e}; the model's top-level modules are {top}."
                ) from None
        stages = [
            m
            for n, m in net.named_children()
            # Not the head, nor a module holding it (timm's `head` holding `head.fc`), and with weights.
            if not any(h == n or h.startswith(n + ".") for h in heads) and any(True for _ in m.parameters())
        ]
        return stages[-self.last_stages :] if self.last_stages else stages

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Resuming after the unfreeze: BaseFinetuning has put the backbone groups back into the
        # optimizer; the LambdaLR needs a multiplier for each before its saved state loads.
        super().on_fit_start(trainer, pl_module)
        for config in trainer.lr_scheduler_configs:
            sched = config.scheduler
            if isinstance(sched, LambdaLR):
                groups = sched.optimizer.param_groups
                while len(sched.lr_lambdas) < len(groups):
                    group = groups[len(sched.lr_lambdas)]
                    sched.lr_lambdas.append(sched.lr_lambdas[0])
                    sched.base_lrs.append(group.get("initial_lr", group["lr"]))

    def finetune_function(self, pl_module: L.LightningModule, epoch: int, optimizer: Optimizer) -> None:
        if epoch < self.unfreeze_at_epoch:
            return
        net = self._net(pl_module)
        in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
        if epoch > self.unfreeze_at_epoch:
            # A run resumed after the unfreeze epoch: the groups are back, their parameters must train.
            for m in self.backbone_modules(net):
                for p in m.parameters():
                    if id(p) in in_optimizer:
                        p.requires_grad = True
            sync_batchnorm_modes(net, pl_module.training)
            return
        bn_params = {id(p) for m in net.modules() if isinstance(m, _BatchNorm) for p in m.parameters()}
        new = [
            p
            for m in self.backbone_modules(net)
            for p in m.parameters()
            if id(p) not in in_optimizer and (self.train_bn or id(p) not in bn_params)
        ]
        if not new:
            return
        for p in new:
            p.requires_grad = True
        # This runs after Lightning's per-epoch `.train()`: unfrozen BatchNorm layers train from now on.
        sync_batchnorm_modes(net, pl_module.training)
        lr = self._lr(pl_module, optimizer)
        wd = optimizer.defaults.get("weight_decay", 0.0) if self.weight_decay is None else self.weight_decay
        decay = [p for p in new if p.ndim > 1]
        no_decay = [p for p in new if p.ndim <= 1]
        added = []
        for suffix, params, g_wd in (("", decay, wd), ("/no_decay", no_decay, 0.0)):
            if params:
                optimizer.add_param_group(
                    {
                        "name": self.group_name + suffix,
                        "params": params,
                        "lr": lr,
                        "initial_lr": lr,
                        "weight_decay": g_wd,
                    }
                )
                added.append(optimizer.param_groups[-1])
        self._follow_schedule(pl_module, optimizer, added)
        from litvision.utils.warn import tell_user

        stages = {id(m) for m in self.backbone_modules(net)}
        names = ", ".join(n for n, m in net.named_modules() if id(m) in stages)
        tell_user(
            log,
            f"epoch {epoch}: unfroze the backbone ({names}; {sum(p.numel() for p in new):,} parameters) "
            f"at lr {lr:g} (group {self.group_name})",
        )

    def _lr(self, pl_module: L.LightningModule, optimizer: Optimizer) -> float:
        if self.backbone_lr is not None:
            # An absolute lr is the one tuned for base_batch_size: scale_lr scales it like every
            # other group's (configure_optimization has scaled the groups built at the start).
            scaling = getattr(pl_module, "lr_scaling_info", None) or {}
            return float(self.backbone_lr) * float(scaling.get("lr_scale", 1.0))
        group = optimizer.param_groups[0]
        return float(group.get("initial_lr", group["lr"])) * self.lr_scale

    @staticmethod
    def _follow_schedule(
        pl_module: L.LightningModule, optimizer: Optimizer, added: list[dict[str, Any]]
    ) -> None:
        """Give the new groups the task's per-step LambdaLR multiplier (warm-up, cosine, step)."""
        trainer = pl_module.trainer
        for config in trainer.lr_scheduler_configs:
            sched = config.scheduler
            if sched.optimizer is not optimizer or not isinstance(sched, LambdaLR):
                continue
            for group in added:
                sched.base_lrs.append(group["initial_lr"])
                sched.lr_lambdas.append(sched.lr_lambdas[0])
                group["lr"] = group["initial_lr"] * sched.lr_lambdas[0](sched.last_epoch)
            sched._last_lr = [g["lr"] for g in optimizer.param_groups]
