"""Batch mixing (data.mixup_alpha / cutmix_alpha / mix_prob / random_erasing): soft targets that sum
to 1, images mixed as the targets say, erasing per image, training on every classification DataModule."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import compose_cfg

from litvision.data.transforms.mixing import BatchMixing

K = 5


def _batch(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, 16, 16, generator=g), torch.arange(n) % K


@pytest.mark.parametrize(
    "alphas", [{"mixup_alpha": 1.0}, {"cutmix_alpha": 1.0}, {"mixup_alpha": 0.2, "cutmix_alpha": 1.0}]
)
def test_mixed_batch_has_soft_targets_summing_to_one(alphas: dict) -> None:
    """Catches: hard labels left in a mixed batch, targets not normalised, or images not mixed as the
    targets say (each image is lam * own + (1 - lam) * its neighbour's, per pixel for CutMix)."""
    torch.manual_seed(0)
    images, labels = _batch()
    out, soft = BatchMixing(**alphas)(images, labels, K)
    assert soft.shape == (8, K) and soft.dtype == torch.float32
    torch.testing.assert_close(soft.sum(dim=1), torch.ones(8))
    lam = soft[torch.arange(8), labels]
    assert ((lam > 0) & (lam < 1)).all(), "every row mixes its own class with another"
    # The partner of image i is image i-1 (torchvision rolls the batch by one).
    partner = labels.roll(1)
    torch.testing.assert_close(soft[torch.arange(8), partner], 1 - lam)
    lam4 = lam[:, None, None, None]
    if "cutmix_alpha" not in alphas:  # MixUp: every pixel is the same blend
        torch.testing.assert_close(out, lam4 * images + (1 - lam4) * images.roll(1, 0))
    else:  # CutMix: each pixel is its own or its partner's, in the proportion lam
        own = (out == images).float().mean(dim=(1, 2, 3))
        partners = (out == images.roll(1, 0)).float().mean(dim=(1, 2, 3))
        torch.testing.assert_close(own + partners, torch.ones(8))
        torch.testing.assert_close(own, lam, atol=1e-6, rtol=0)


def test_unmixed_batches_get_one_hot_targets_and_untouched_images() -> None:
    """mix_prob=0.5: about half the batches mix. Catches: mix_prob ignored, or unmixed batches keeping
    index labels (two target types in one run)."""
    torch.manual_seed(0)
    images, labels = _batch()
    mixing = BatchMixing(mixup_alpha=1.0, mix_prob=0.5)
    mixed = 0
    for _ in range(40):
        out, soft = mixing(images, labels, K)
        assert soft.shape == (8, K)
        if torch.equal(out, images):
            assert torch.equal(soft, torch.nn.functional.one_hot(labels, K).float())
        else:
            mixed += 1
    assert 8 <= mixed <= 32
    out, y = BatchMixing(mixup_alpha=1.0, mix_prob=0.0)(images, labels, K)
    assert torch.equal(out, images) and torch.equal(y, labels), "mix_prob=0 turns mixing off"


def test_random_erasing_draws_a_box_per_image() -> None:
    """p=1 erases a box in every image, each its own; p=0.3 erases about 30% of the images.
    Catches: one erasing box shared by the whole batch, erasing left off, and the probability
    ignored (RandomErasing built with p=1.0: every image erased)."""
    torch.manual_seed(0)
    images = torch.ones(6, 3, 32, 32)
    out, labels = BatchMixing(random_erasing=1.0)(images, torch.zeros(6, dtype=torch.long), K)
    erased = out == 0
    assert erased.any(dim=(1, 2, 3)).all(), "p=1 erases a box in every image"
    assert len({tuple(m.nonzero().min(0).values.tolist()) for m in erased}) > 1
    assert labels.ndim == 1, "erasing alone keeps class-index labels"
    # 400 images at p=0.3: 120 expected, standard deviation 9.2; [85, 155] is about 3.8 sigma.
    out, _ = BatchMixing(random_erasing=0.3)(torch.ones(400, 3, 8, 8), torch.zeros(400, dtype=torch.long), K)
    hit = int((out == 0).any(dim=(1, 2, 3)).sum())
    assert 85 <= hit <= 155, f"{hit} of 400 images erased at p=0.3"


def test_soft_targets_and_label_smoothing_compose_in_the_loss() -> None:
    """Catches: the task's loss rejecting soft targets or dropping label smoothing for them."""
    from omegaconf import OmegaConf

    from litvision.tasks.classification import ClassificationTask

    net = {
        "_target_": "litvision.models.classification.cnn.SmallCNN",
        "in_channels": 1,
        "num_classes": K,
        "width": 4,
    }
    opt = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}
    task = ClassificationTask(OmegaConf.create(net), K, OmegaConf.create(opt), label_smoothing=0.1)
    logits, y = torch.randn(8, K), torch.arange(8) % K
    soft = torch.nn.functional.one_hot(y, K).float()
    torch.testing.assert_close(task._loss(logits, soft), task._loss(logits, y))
    smoothed = soft * 0.9 + 0.1 / K
    expected = -(smoothed * logits.log_softmax(-1)).sum(-1).mean()
    torch.testing.assert_close(task._loss(logits, soft), expected)


class LabelProbe:
    """A callback recording the shape of each batch's labels as the task receives them: training
    batches in `seen`, validation and test batches in `evaluated`."""

    seen: list[tuple[int, ...]] = []
    evaluated: list[tuple[int, ...]] = []

    def __new__(cls):
        from lightning.pytorch import Callback

        class _Probe(Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
                LabelProbe.seen.append(tuple(batch[1].shape))

            def on_validation_batch_start(
                self, trainer, pl_module, batch, batch_idx, dataloader_idx=0
            ) -> None:
                LabelProbe.evaluated.append(tuple(batch[1].shape))

            def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
                LabelProbe.evaluated.append(tuple(batch[1].shape))

        return _Probe()


# Every classification DataModule, trained with a small CNN on its fixture at a small size.
DATA = {
    "digits": [],
    "mnist": ["model.net.in_channels=1"],
    "cifar10": ["model.net.in_channels=3"],
    "cifar100": ["model.net.in_channels=3"],
    "image_folder": ["model.net.in_channels=3", "data.image_size=32", "data.resize_size=36"],
    "flowers": ["model.net.in_channels=3", "data.image_size=32", "data.resize_size=36"],
}


@pytest.mark.parametrize("data", sorted(DATA))
def test_training_with_mixing_runs_on_every_classification_datamodule(
    data: str, runs_dir: Path, tmp_path: Path
) -> None:
    """Training batches get soft targets; validation and test batches keep class indices.
    Catches: a DataModule without the mixing hook (its batches stay hard labels), one whose
    training step fails on soft targets, and validation/test batches mixed too (the hook's
    `trainer.training` check dropped: their labels become soft targets)."""
    from litvision.data.fixtures import fixture_maker
    from litvision.train import train

    num_classes = {"cifar100": 100, "flowers": 5, "image_folder": 3}.get(data, 10)
    LabelProbe.seen.clear()
    LabelProbe.evaluated.clear()
    overrides = [
        "experiment=digits_cnn",
        f"data={data}",
        *fixture_maker(data)(tmp_path / "data"),
        *DATA[data],
        "debug=fast_dev_run",
        "data.mixup_alpha=0.2",
        "data.cutmix_alpha=1.0",
        "data.random_erasing=0.5",
        "model.label_smoothing=0.1",
        "+callbacks.probe._target_=test_mixing.LabelProbe",
    ]
    summary = train(compose_cfg(overrides, runs_dir))
    assert summary["global_step"] == 1 and summary["test"]
    assert LabelProbe.seen and all(s[1:] == (num_classes,) for s in LabelProbe.seen), LabelProbe.seen
    # fast_dev_run: one validation and one test batch, both with index labels.
    assert len(LabelProbe.evaluated) == 2 and all(len(s) == 1 for s in LabelProbe.evaluated), (
        LabelProbe.evaluated
    )


@pytest.mark.parametrize(
    ("override", "key"),
    [("data.mixup_alpha=-1", "data.mixup_alpha=-1"), ("data.random_erasing=1.5", "data.random_erasing=1.5")],
)
def test_bad_mixing_values_are_one_line(override: str, key: str, tmp_path: Path) -> None:
    """Catches: a negative alpha reaching torch's Beta distribution (a traceback at the first batch)."""
    from litvision.build import build_datamodule
    from litvision.errors import UserError
    from litvision.tasks.options import check_training_options

    cfg = compose_cfg([override], tmp_path)
    for check in (check_training_options, build_datamodule):
        with pytest.raises(UserError, match=key.replace(".", r"\.")) as e:
            check(cfg)
        assert "\n" not in str(e.value)


# -- the pieces, at the unit level ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "said"),
    [
        ({"mixup_alpha": -1}, "data.mixup_alpha=-1 must be >= 0"),
        ({"cutmix_alpha": -0.5}, "data.cutmix_alpha=-0.5 must be >= 0"),
        ({"mix_prob": 2}, "data.mix_prob=2 is a probability"),
        ({"random_erasing": -0.1}, "data.random_erasing=-0.1 is a probability"),
    ],
)
def test_each_bad_value_names_its_own_key(kwargs: dict, said: str) -> None:
    """Catches: a message naming another key (the key strings in check_mixing's loops changed), or
    the defaults of check_mixing refusing a call that gives no value."""
    from litvision.data.transforms.mixing import check_mixing
    from litvision.errors import UserError

    check_mixing()  # the defaults are valid: mixing off
    with pytest.raises(UserError) as err:
        check_mixing(**kwargs)
    assert str(err.value).startswith(said), str(err.value)


def test_the_configured_alphas_and_erasing_probability_reach_torchvision() -> None:
    """Catches: MixUp/CutMix built with torchvision's default alpha (1.0) instead of the configured
    one, or RandomErasing with its default p (0.5)."""
    from torchvision.transforms import v2

    assert BatchMixing(mixup_alpha=0.2)._mixer(K).alpha == 0.2
    assert BatchMixing(cutmix_alpha=0.7)._mixer(K).alpha == 0.7
    both = BatchMixing(mixup_alpha=0.2, cutmix_alpha=0.7)._mixer(K)
    assert isinstance(both, v2.RandomChoice) and [t.alpha for t in both.transforms] == [0.2, 0.7]
    erasing = BatchMixing(random_erasing=0.25)
    erasing(*_batch(), K)
    assert erasing._eraser.p == 0.25


def test_unmixed_targets_are_k_wide_in_the_images_dtype_and_int_images_are_refused() -> None:
    """A batch without the last class still gets K-wide one-hot targets (one_hot without
    num_classes would make them as wide as the batch's largest label), in the images' dtype.
    Catches those, and an integer batch passing silently."""
    images = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    labels = torch.zeros(4, dtype=torch.long)
    never = BatchMixing(mixup_alpha=1.0, mix_prob=1e-12)
    _, soft = never(images, labels, K)
    assert soft.shape == (4, K) and soft.dtype == torch.float64
    assert torch.equal(soft, torch.nn.functional.one_hot(labels, K).double())
    with pytest.raises(
        TypeError, match=r"^BatchMixing needs normalised float images; apply it after normalisation\.$"
    ):
        never(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), labels, K)


def test_only_an_images_and_labels_batch_of_a_training_trainer_is_mixed() -> None:
    """Catches: mixing outside training (validation, test, predict), with mixing off, on a DataModule
    without `mixing` or `trainer`, or on a batch that is not (images, labels)."""
    from types import SimpleNamespace

    from litvision.data.transforms.mixing import mix_training_batch

    images, labels = _batch()
    on, off = BatchMixing(mixup_alpha=1.0), BatchMixing()
    training, evaluating = SimpleNamespace(training=True), SimpleNamespace(training=False)

    def dm(**kw):
        return SimpleNamespace(num_classes=K, **kw)

    batch = (images, labels)
    for module in (
        dm(),
        dm(mixing=on),
        dm(trainer=training),
        dm(mixing=None, trainer=training),
        dm(mixing=off, trainer=training),
        dm(mixing=on, trainer=evaluating),
        dm(mixing=on, trainer=None),
    ):
        assert mix_training_batch(module, batch) is batch, module
    for other in ({"image": images}, (images, labels, labels), [images]):
        assert mix_training_batch(dm(mixing=on, trainer=training), other) is other
    _, soft = mix_training_batch(dm(mixing=on, trainer=training), batch)
    assert soft.shape == (8, K)
