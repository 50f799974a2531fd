"""tasks/finetune.py at the unit level, in milliseconds: what `model.freeze` keeps trainable (and how it
refuses a bad value), BatchNorm modes after a freeze, and layer-wise lr decay on a model without timm's
group_matcher. The training-level checks are in tests/test_transfer.py."""

from __future__ import annotations

import pytest
from torch import nn

from litvision.errors import UserError
from litvision.tasks.finetune import freeze, layer_decay_param_groups, sync_batchnorm_modes


class Net(nn.Module):
    """A backbone (conv + BatchNorm) and a `fc` head: the layout of a torchvision ResNet."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        self.block = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
        self.fc = nn.Linear(4, 2)


def _trainable(net: nn.Module) -> list[str]:
    return [n for n, p in net.named_parameters() if p.requires_grad]


def test_freeze_backbone_keeps_the_head_and_returns_what_stays_trainable() -> None:
    """Catches: `backbone` not recognised (or the head looked up on no model), the returned names wrong,
    `none`/null freezing anything."""
    net = Net()
    kept = freeze(net, "backbone")
    assert kept == _trainable(net) == ["fc.weight", "fc.bias"]
    for spec in ("none", None):
        net = Net()
        assert freeze(net, spec) == _trainable(net) == [n for n, _ in net.named_parameters()]
    net = Net()
    assert freeze(net, ["block.0", "fc"]) == ["block.0.weight", "block.0.bias", "fc.weight", "fc.bias"]


def test_bad_freeze_values_are_one_line_and_name_the_choices() -> None:
    """Catches: the examples or the model's top-level modules missing from the message, or wrong (split
    on the wrong separator, the last part instead of the first)."""
    with pytest.raises(UserError) as e:
        freeze(Net(), "head")
    assert str(e.value) == (
        "model.freeze='head': use none, backbone, or a list of module prefixes to keep trainable, "
        "e.g. model.freeze=[fc] or model.freeze=[layer4,fc]."
    )
    with pytest.raises(UserError) as e:
        freeze(Net(), ["layer9", "fc"])
    assert str(e.value) == (
        "model.freeze lists ['layer9'], which match no parameter of Net; "
        "its top-level modules are ['block', 'fc', 'features']."
    )


def test_frozen_batchnorm_stays_in_eval_mode_whatever_the_model_mode() -> None:
    """A BatchNorm whose parameters are all frozen is put in eval mode (its running statistics keep their
    pretrained values); the others follow the `training` asked for, or the model's own mode.
    Catches: an explicit `training` ignored (the model's mode used instead)."""
    net = Net()
    freeze(net, ["block", "fc"])
    net.train()
    sync_batchnorm_modes(net)
    assert (net.features[1].training, net.block[1].training) == (False, True)
    net.eval()
    sync_batchnorm_modes(net, training=True)
    assert (net.features[1].training, net.block[1].training) == (False, True)
    sync_batchnorm_modes(net, training=False)
    assert (net.features[1].training, net.block[1].training) == (False, False)


def test_layer_decay_on_a_model_without_group_matcher() -> None:
    """timm's automatic grouping for a plain model: each layer's lr is lr * decay ** (layers after it),
    biases (1-D) in a no_decay twin without weight decay, frozen parameters left out, and a model with
    nothing trainable refused with a message that says why.
    Catches: the automatic grouping not used (or given no model), `no_weight_decay` called on a model
    without it, the loop stopping at the first frozen parameter, the refusal's message lost."""
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2))
    net.pretrained_cfg = {"classifier": "2"}  # as timm models say where their head is
    net[0].bias.requires_grad = False
    groups = layer_decay_param_groups(net, lr=1.0, weight_decay=0.1, layer_decay=0.5)
    got = {g["name"]: (g["lr"], g["weight_decay"], len(g["params"])) for g in groups}
    assert got == {
        "layer_00": (0.5, 0.1, 2),  # 0.weight, 1.weight
        "layer_00/no_decay": (0.5, 0.0, 1),  # 1.bias (0.bias is frozen)
        "head": (1.0, 0.1, 1),
        "head/no_decay": (1.0, 0.0, 1),
    }
    assert [g["lr"] for g in groups] == sorted(g["lr"] for g in groups)
    for p in net.parameters():
        p.requires_grad = False
    with pytest.raises(
        ValueError, match="^the model has no trainable parameters: check the freeze settings$"
    ):
        layer_decay_param_groups(net, lr=1.0, weight_decay=0.1, layer_decay=0.5)
