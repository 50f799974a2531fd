"""The model catalog: every model config builds a registered model of the right task kind, weights
describe their own preprocessing, family names resolve, and `litvision list models` shows them."""

from __future__ import annotations

import pytest
import torch
from conftest import ROOT, run_cli

from litvision.errors import UserError
from litvision.models import registry

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
KIND = {
    "litvision.tasks.classification.ClassificationTask": "classification",
    "litvision.tasks.detection.DetectionTask": "detection",
}


def _net_configs() -> list[tuple[str, str, dict]]:
    """(where, task kind, net config) of every model config in configs/model/, and of every experiment
    that names a network of its own (`model.net._target_`, read from its YAML)."""
    import yaml
    from omegaconf import OmegaConf

    from litvision.config import compose, experiments_dir

    out = []
    for path in sorted((ROOT / "configs" / "model").glob("*.yaml")):
        cfg = compose(["experiment=digits_cnn", f"model={path.stem}"])
        kind = KIND[cfg.model._target_]
        out.append((path.stem, kind, OmegaConf.to_container(cfg.model.net, resolve=False)))
    for path in sorted(experiments_dir().glob("*.yaml")):
        model = (yaml.safe_load(path.read_text()) or {}).get("model") or {}
        if "_target_" in (model.get("net") or {}):
            kind = next(k for m, k, _ in out if m == _model_choice(path))
            out.append((path.name, kind, model["net"]))
    return out


def _model_choice(experiment: object) -> str:
    """The model config an experiment file picks (`override /model: <name>`), following its parents."""
    import yaml

    from litvision.config import experiments_dir

    data = yaml.safe_load(experiment.read_text()) or {}  # type: ignore[attr-defined]
    for entry in data.get("defaults", []):
        if isinstance(entry, dict) and "override /model" in entry:
            return entry["override /model"]
        if isinstance(entry, str) and entry != "_self_":
            return _model_choice(experiments_dir() / f"{entry}.yaml")
    return "small_cnn"


def test_every_model_config_builds_a_registered_model_of_its_task() -> None:
    """Catches: a model module losing its @register_model (lenet), and a registration with the wrong
    task kind (yolov1 registered as classification)."""
    seen = set()
    for where, kind, net in _net_configs():
        entry = registry.entry_for(net)
        assert entry is not None, f"{where}: {net['_target_']} is not in the registry"
        assert entry.task == kind, f"{where}: registry says {entry.task}, the config's task is {kind}"
        seen.add(entry.target)
    # Every family and own-net kind the configs use: the classifiers, timm, the detectors, YOLOv1.
    assert len(seen) >= 6, seen


def test_torchvision_weights_describe_their_preprocessing() -> None:
    """Catches: mean and std swapped when read from torchvision's transforms(), and the input size taken
    from the resize (232) instead of the crop (224)."""
    spec = registry.weights_spec("torchvision/resnet50", "IMAGENET1K_V2")
    assert spec.source == "torchvision" and spec.ref == "ResNet50_Weights.IMAGENET1K_V2"
    assert spec.mean == pytest.approx(IMAGENET_MEAN) and spec.std == pytest.approx(IMAGENET_STD)
    assert spec.input_size == (3, 224, 224) and spec.resize_size == 232 and spec.channels == 3
    assert spec.interpolation == "bilinear" and spec.num_classes == 1000 and spec.class_names[0] == "tench"
    # The same through a composed config's net (the resnet entry, its arch from the config).
    entry, spec = registry.describe_net(
        {
            "_target_": "litvision.models.classification.resnet.resnet",
            "arch": "resnet50",
            "weights": "DEFAULT",
        }
    )
    assert entry.name == "resnet" and spec.ref == "ResNet50_Weights.IMAGENET1K_V2"
    # An old checkpoint's target (before models/classification/) is the same entry.
    assert registry.entry_for({"_target_": "litvision.models.cnn.SmallCNN"}).name == "small_cnn"
    timm_spec = registry.weights_spec("timm/vit_small_patch16_224", "DEFAULT")
    assert timm_spec.mean == (0.5, 0.5, 0.5) and timm_spec.interpolation == "bicubic"
    assert timm_spec.ref == "timm/vit_small_patch16_224.augreg_in21k_ft_in1k"
    detector = registry.weights_spec("torchvision/fasterrcnn_resnet50_fpn", "DEFAULT")
    assert detector.num_classes == 91 and detector.mean is None  # the detector normalises itself
    assert registry.weights_spec("lenet").input_size == (1, 28, 28)
    assert registry.weights_spec("lenet", "/w/lenet.pth").source == "file"


def test_families_resolve_and_build_by_name() -> None:
    """Catches: a family entry accepting the other family's names (a detector built as a classifier),
    and build_model dropping the arch a family name carries."""
    assert registry.get_model("torchvision/resnet50").task == "classification"
    assert registry.get_model("torchvision/fcos_resnet50_fpn").task == "detection"
    assert registry.get_model("timm/resnet10t").task == "classification"
    net = registry.build_model("torchvision/mobilenet_v3_small", num_classes=3, in_channels=1)
    assert net(torch.rand(2, 1, 32, 32)).shape == (2, 3) and net.weights_arch == "mobilenet_v3_small"
    with pytest.raises(UserError, match="Unknown model 'torchvision/nonet'"):
        registry.get_model("torchvision/nonet")


def test_list_models_through_the_cli(capsys) -> None:
    """Catches: `list models` falling through to the experiment table, and an entry missing from the
    table (the table built from a hand list instead of the registry)."""
    proc = run_cli("litvision", "list", "models", check=True, env={"COLUMNS": "250"})
    for entry in registry.entries():
        assert entry.name in proc.stdout, entry.name
    assert "0.485" in proc.stdout and "digits_cnn" not in proc.stdout
    from litvision.cli import list_models

    list_models(["torchvision/resnet50"])
    one = capsys.readouterr().out
    assert "IMAGENET1K_V2" in one and "ResNet50_Weights.IMAGENET1K_V1" in one and "232" not in one
    bad = run_cli("litvision", "list", "models", "nope")
    assert (
        bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "Unknown model 'nope'" in bad.stderr
    )


def test_any_torchvision_classifier_without_a_config_of_its_own() -> None:
    """`model=torchvision model.net.arch=<any>`: the task builds it, its head sized for the data.

    Catches: the head left at 1000 classes (the Linear not replaced), and the first conv left at 3
    channels for 1-channel digits."""
    from hydra.utils import instantiate

    from litvision.config import compose

    cfg = compose(["experiment=digits_cnn", "model=torchvision", "model.net.arch=shufflenet_v2_x0_5"])
    task = instantiate(cfg.model)
    assert task(torch.rand(2, 1, 32, 32)).shape == (2, 10)
    assert registry.entry_for(cfg.model.net).name == "torchvision/shufflenet_v2_x0_5"
