"""Architectures: the shapes the recipes state, sane parameter counts, heads and bad names."""

from __future__ import annotations

import pytest
import torch

from litvision.errors import UserError


def _params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_alexnet_recipe_shapes() -> None:
    from litvision.models.classification.alexnet import AlexNet

    net = AlexNet(num_classes=10).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        feats = net.features(x)
        logits = net(x)
    # (224 + 2 - 11) // 4 + 1 = 54 -> pools -> 26 -> 12 -> 5: the recipe's 256 * 5 * 5 flatten.
    assert feats.shape == (2, 256, 5, 5)
    assert net.classifier[1].in_features == 256 * 5 * 5 == 6400
    assert [m.out_features for m in net.modules() if isinstance(m, torch.nn.Linear)] == [4096, 4096, 10]
    assert [m.p for m in net.modules() if isinstance(m, torch.nn.Dropout)] == [0.5, 0.5]
    assert logits.shape == (2, 10)
    # conv 3.75 M + FC 6400*4096 + 4096*4096 + 4096*10 (with biases)
    assert _params(net) == 3_747_200 + 26_218_496 + 16_781_312 + 40_970


def test_alexnet32_and_lenet() -> None:
    from litvision.models.classification.alexnet import AlexNet32
    from litvision.models.classification.lenet import LeNet5

    net = AlexNet32(num_classes=10)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert 5e6 < _params(net) < 9e6
    lenet = LeNet5(in_channels=1, num_classes=10, image_size=28)
    assert lenet(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert _params(lenet) == 61_706  # LeNet-5's classic count: 156 + 2,416 + 48,120 + 10,164 + 850


def test_vit_and_swin_from_scratch_at_32px() -> None:
    from litvision.models.classification.timm_models import timm_model

    # The ViT-CIFAR recipe's network: patch 4, 7 layers, width 384, MLP 384: 6.3 M parameters.
    vit = timm_model(
        "vit_small_patch16_224",
        num_classes=10,
        img_size=32,
        patch_size=4,
        embed_dim=384,
        depth=7,
        num_heads=12,
        mlp_ratio=1.0,
    )
    assert vit.patch_embed.num_patches == 64
    assert 6.2e6 < _params(vit) < 6.35e6
    assert vit(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    swin = timm_model(
        "swin_tiny_patch4_window7_224",
        num_classes=10,
        img_size=32,
        patch_size=2,
        window_size=4,
        embed_dim=24,
        depths=(2, 2),
        num_heads=(2, 4),
    )
    assert swin(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert 5e4 < _params(swin) < 2e5


def test_resnet_heads() -> None:
    from litvision.models.classification.resnet import resnet
    from litvision.models.heads import DropoutLinear, head_prefixes

    net = resnet("resnet18", num_classes=7, dropout=0.2)
    assert isinstance(net.fc, DropoutLinear) and net.fc.out_features == 7 and net.fc.drop.p == 0.2
    assert {"fc.weight", "fc.bias"} <= set(net.state_dict())  # loads like torchvision's fc
    assert head_prefixes(net) == ("fc",) and net.weights_arch == "resnet18"
    classic = resnet("resnet18", num_classes=7, head="stack")
    assert classic.backbone.fc.out_features == 1000
    assert [type(m).__name__ for m in classic.head] == ["ReLU", "Dropout", "Linear"]
    assert classic.head[1].p == 0.5 and classic.head[2].in_features == 1000
    assert classic(torch.randn(2, 3, 64, 64)).shape == (2, 7)
    cifar = resnet("resnet18", num_classes=10, cifar_stem=True).eval()
    assert cifar.conv1.stride == (1, 1) and isinstance(cifar.maxpool, torch.nn.Identity)
    assert cifar(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert 11.1e6 < _params(cifar) < 11.2e6


def test_bad_model_names_are_user_errors() -> None:
    from litvision.models.classification.resnet import resnet
    from litvision.models.classification.timm_models import timm_model

    with pytest.raises(UserError, match="resnet51.*not a torchvision model"):
        resnet("resnet51")
    with pytest.raises(UserError, match="head='top'"):
        resnet("resnet18", head="top")
    with pytest.raises(UserError, match="vit_smol.*not a timm model"):
        timm_model("vit_smol_patch16_224", num_classes=3)
    with pytest.raises(
        UserError, match="model.net.pretrained_file: weights file .*nowhere.safetensors does not exist"
    ):
        timm_model("vit_small_patch16_224", num_classes=3, pretrained_file="/nowhere.safetensors")
