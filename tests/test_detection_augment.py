"""Detection augmentation keeps boxes on their objects: each transform is checked against the pixels
of a filled rectangle, and the batch-level options (multi-scale, mosaic) against their promises."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors

from litvision.data.detection import detection_collate, make_target
from litvision.data.transforms.detection import MultiScaleCollate, detection_transforms
from litvision.data.transforms.mosaic import MosaicDataset, MosaicSampler

OFF = {"hflip": 0.0, "photometric": 0.0, "zoom_out": 0.0}


def _rect_sample(h: int, w: int, box: list[float], label: int = 1) -> tuple[tv_tensors.Image, dict]:
    """A black uint8 image with `box` (XYXY, whole pixels) filled white, and its target."""
    img = torch.zeros(3, h, w, dtype=torch.uint8)
    x0, y0, x1, y1 = (int(v) for v in box)
    img[:, y0:y1, x0:x1] = 255
    return tv_tensors.Image(img), make_target([box], [label], (h, w), image_id=0)


def _drawn_box(image: torch.Tensor) -> torch.Tensor:
    """The extent of the bright pixels (> half the white) of a float [0, 1] or uint8 image."""
    img = image.as_subclass(torch.Tensor).float()
    img = img / 255 if img.max() > 1.5 else img
    ys, xs = torch.nonzero(img.mean(0) > 0.75, as_tuple=True)
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)


@pytest.mark.parametrize(
    "option",
    [{"iou_crop": 1.0}, {"zoom_out": 1.0, "fill": 0}, {"scale_jitter": [0.3, 2.0]}, {"hflip": 1.0}],
    ids=["iou_crop", "zoom_out", "scale_jitter", "hflip"],
)
def test_box_stays_on_its_rectangle(option: dict) -> None:
    """After each transform (several random draws), the box is where the white pixels are.
    Catches: boxes not moved with the image (the IoU crop applied to the image alone), and the
    final resize given one side (aspect kept) instead of the square."""
    transform = detection_transforms(train=True, image_size=64, **{**OFF, **option})
    for seed in range(6):
        torch.manual_seed(seed)
        image, target = transform(*_rect_sample(80, 120, [30, 20, 90, 60]))
        assert image.shape[-2:] == (64, 64)
        if len(target["boxes"]) == 0:  # the crop left the rectangle out: no box, and no pixels
            assert (image.mean(0) > 0.75).sum() == 0
            continue
        assert len(target["labels"]) == len(target["boxes"]) == len(target["area"]) == 1
        box = target["boxes"][0].as_subclass(torch.Tensor)
        torch.testing.assert_close(box, _drawn_box(image), atol=1.5, rtol=0)


def test_photometric_distortion_leaves_boxes_alone() -> None:
    transform = detection_transforms(train=True, image_size=60, **{**OFF, "photometric": 1.0})
    torch.manual_seed(0)
    _, target = transform(*_rect_sample(60, 60, [10, 10, 30, 40]))
    assert target["boxes"].tolist() == [[10.0, 10.0, 30.0, 40.0]]


def test_boxes_leaving_the_image_are_clipped_or_dropped() -> None:
    """A crop (scale jitter up to 3x, then a 64 px crop) cuts boxes: what stays is inside the image
    with its labels, and boxes cropped away leave with theirs.
    Catches: SanitizeBoundingBoxes dropped from the pipeline (empty boxes kept), and its labels
    getter not filtering iscrowd/area with the boxes."""
    transform = detection_transforms(train=True, image_size=64, **{**OFF, "scale_jitter": [2.0, 3.0]})
    boxes = [[2, 2, 20, 20], [44, 44, 62, 62], [25, 25, 40, 40]]
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        target = make_target(boxes, [0, 1, 2], (64, 64), image_id=0, iscrowd=[0, 1, 0])
        _, out = transform(tv_tensors.Image(torch.zeros(3, 64, 64, dtype=torch.uint8)), target)
        b = out["boxes"].as_subclass(torch.Tensor)
        n = len(b)
        assert len(out["labels"]) == len(out["iscrowd"]) == len(out["area"]) == n
        assert (b[:, 2] - b[:, 0] >= 1).all() and (b[:, 3] - b[:, 1] >= 1).all()
        assert b.min() >= 0 and b.max() <= 64
        seen.add(n)
    assert min(seen) < 3, "some draws must crop boxes away"


def test_a_crop_leaving_no_box_is_handled() -> None:
    """An image without boxes, and one whose only box a crop removes, give empty targets.
    Catches: boxes kept when the crop cuts them away (SanitizeBoundingBoxes left out), and labels
    not dropped with their boxes."""
    transform = detection_transforms(train=True, image_size=32, **{**OFF, "iou_crop": 1.0})
    empty = make_target(torch.zeros(0, 4), [], (48, 48), image_id=0)
    image, out = transform(tv_tensors.Image(torch.zeros(3, 48, 48, dtype=torch.uint8)), empty)
    assert image.shape[-2:] == (32, 32) and len(out["boxes"]) == len(out["labels"]) == 0
    jitter = detection_transforms(train=True, image_size=32, **{**OFF, "scale_jitter": [3.0, 3.0]})
    gone = 0
    for seed in range(10):
        torch.manual_seed(seed)
        _, out = jitter(*_rect_sample(32, 32, [0, 0, 4, 4]))
        gone += len(out["boxes"]) == 0
        assert len(out["boxes"]) == len(out["labels"])
    assert gone > 0


def test_multi_scale_changes_the_size_between_batches_within_range() -> None:
    """Catches: one size drawn for the whole run (not per batch), and boxes not resized with the batch."""
    collate = MultiScaleCollate(range(64, 129, 32), detection_collate)
    torch.manual_seed(0)
    sizes = set()
    for _ in range(12):
        batch = [detection_transforms(False, 96)(*_rect_sample(96, 96, [24, 24, 72, 48])) for _ in range(2)]
        images, targets = collate(batch)
        side = images[0].shape[-1]
        assert all(im.shape[-2:] == (side, side) for im in images)
        sizes.add(side)
        torch.testing.assert_close(
            targets[0]["boxes"].as_subclass(torch.Tensor)[0], _drawn_box(images[0]), atol=1.5, rtol=0
        )
    assert sizes <= {64, 96, 128} and len(sizes) >= 2, sizes


class _FourRects(torch.utils.data.Dataset):
    """Item k: a 64 px image with one white rectangle of label k (item 0's half off its left side)."""

    BOXES = [[0, 20, 30, 50], [10, 10, 40, 30], [30, 30, 60, 60], [5, 40, 25, 60]]

    def __len__(self) -> int:
        return 4

    def __getitem__(self, k: int):
        return _rect_sample(64, 64, self.BOXES[k], label=k)


def test_mosaic_boxes_land_in_their_quadrants() -> None:
    """Centre fixed at (48, 48) on the 128 px canvas: item 0 top-left, 1 top-right, 2 bottom-left,
    3 bottom-right; the top tiles lose 16 px at the top, item 0's also at the left, and the boxes
    reaching there are clipped with them.
    Catches: tiles placed in the wrong corner order, and boxes not offset to their tile."""
    ds = MosaicDataset(_FourRects(), size=64, p=1.0, fill=0, center_range=(0.75, 1.25))
    ds.center_range = (0.75, 0.75)
    cx = cy = 48
    image, target = ds.mosaic([0, 1, 2, 3])
    assert image.shape[-2:] == (128, 128) and ds.last_center == (cx, cy)
    boxes = target["boxes"].as_subclass(torch.Tensor)
    by_label = dict(zip(target["labels"].tolist(), boxes, strict=True))
    assert set(by_label) == {0, 1, 2, 3}
    # Tile k's top-left corner on the canvas, then the box moved by it.
    corners = {0: (cx - 64, cy - 64), 1: (cx, cy - 64), 2: (cx - 64, cy), 3: (cx, cy)}
    for k, (x0, y0) in corners.items():
        expected = torch.tensor(_FourRects.BOXES[k], dtype=torch.float32) + torch.tensor([x0, y0, x0, y0])
        expected = expected.clamp(min=0)
        torch.testing.assert_close(by_label[k], expected)
        b = by_label[k]
        inside = image[:, int(b[1]) : int(b[3]), int(b[0]) : int(b[2])]
        assert inside.float().mean() == 255, k  # the box covers white pixels only
        right, below = b[0] >= cx, b[1] >= cy
        assert (bool(right), bool(below)) == (k in (1, 3), k in (2, 3)), k
    assert int((image.float().mean(0) > 127).sum()) == int(((boxes[:, 2:] - boxes[:, :2]).prod(1)).sum())


def test_mosaic_switches_off_for_the_last_epochs() -> None:
    """Catches: the off-switch counting from the first epoch instead of the last, and the dataset
    ignoring the sampler's off flag."""
    sampler = MosaicSampler(range(3), max_epochs=5, off_epochs=2)
    flags = []
    for epoch in range(5):
        sampler.set_epoch(epoch)
        flags.append({on for _, on in sampler})
    assert flags == [{True}, {True}, {True}, {False}, {False}]
    ds = MosaicDataset(_FourRects(), size=64, p=1.0)
    image, _ = ds[(2, False)]
    assert image.shape[-2:] == (64, 64)


def test_datamodule_options_reach_the_train_loader(tmp_path) -> None:
    """data.augment.multi_scale and mosaic on the shapes fixture: train batches at sizes from the
    list, mosaic canvases in them; validation untouched.
    Catches: the batch-level options passed on to the per-image transforms (a TypeError), and the
    multi-scale collate used for validation too."""
    from conftest import compose_cfg

    from litvision.build import build_datamodule
    from litvision.data.fixtures import fixture_maker

    cfg = compose_cfg(
        [
            "experiment=det_small_shapes",
            *fixture_maker("shapes_voc")(tmp_path / "data"),
            "data.image_size=64",
            "data.augment.multi_scale=[32,96]",
            "data.augment.mosaic=1.0",
        ],
        tmp_path / "runs",
    )
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    torch.manual_seed(0)
    sizes = {images[0].shape[-1] for images, _ in dm.train_dataloader()} | {
        images[0].shape[-1] for images, _ in dm.train_dataloader()
    }
    assert sizes == {32, 96}, sizes
    assert {images[0].shape[-1] for images, _ in dm.val_dataloader()} == {64}
    _, target = dm.datasets["train"].dataset[(0, True)]
    assert target["boxes"].canvas_size == (128, 128)  # the 2S mosaic canvas, before the resize
