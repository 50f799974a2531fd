"""Detection data loading: litvision's VOC reader against torchvision's VOCDetection.

Both read the same generated shapes dataset (VOCdevkit layout) and return the same contract
(uint8 image tensor + XYXY boxes + labels). The baseline is the common recipe: torchvision's
VOCDetection (XML parsed to a dict and the JPEG decoded by PIL on every item) converted to
tensors per item; litvision parses every XML once up front and decodes with torchvision.io. Reported as items/s
and their ratio (litvision / torchvision), measured in the same run, plus the cost of the train
transforms and of generating the shapes dataset.

    python -m bench det_data
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


def _rate(dataset, repeats: int = 2) -> float:
    n = len(dataset)
    dataset[0]
    start = time.perf_counter()
    for _ in range(repeats):
        for i in range(n):
            dataset[i]
    return repeats * n / (time.perf_counter() - start)


def run(num_images: int = 256, image_size: int = 128) -> dict:
    import torch
    from torchvision.datasets import VOCDetection as TVVOC
    from torchvision.transforms.v2.functional import pil_to_tensor

    from litvision.data.datasets.shapes import SHAPES_CLASSES, generate
    from litvision.data.datasets.voc import VOCDetection
    from litvision.data.detection import TransformedDataset
    from litvision.data.transforms.detection import detection_transforms

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        root = generate(
            Path(tmp) / "shapes", num_train=num_images, num_val=0, num_test=0, image_size=image_size
        )
        gen_rate = num_images / (time.perf_counter() - start)
        start = time.perf_counter()
        ours = VOCDetection(root, "2007", "train", SHAPES_CLASSES)
        index_s = time.perf_counter() - start
        class_to_idx = {c: i for i, c in enumerate(SHAPES_CLASSES)}

        class Baseline(torch.utils.data.Dataset):
            def __init__(self) -> None:
                self.voc = TVVOC(str(root), year="2007", image_set="train")

            def __len__(self) -> int:
                return len(self.voc)

            def __getitem__(self, i: int):
                image, ann = self.voc[i]
                objs = ann["annotation"]["object"]
                boxes = [[float(o["bndbox"][k]) for k in ("xmin", "ymin", "xmax", "ymax")] for o in objs]
                labels = torch.tensor([class_to_idx[o["name"]] for o in objs])
                return pil_to_tensor(image), {"boxes": torch.tensor(boxes), "labels": labels}

        theirs = Baseline()
        # Same boxes: torchvision keeps VOC's raw numbers; litvision's x1/y1 are 1 lower (1-based -> 0-based).
        a, b = ours[0][1]["boxes"], theirs[0][1]["boxes"]
        assert torch.equal(a[:, 2:], b[:, 2:]) and torch.equal(a[:, :2] + 1, b[:, :2])
        ours_rate, theirs_rate = _rate(ours), _rate(theirs)
        train_rate = _rate(TransformedDataset(ours, detection_transforms(train=True, image_size=image_size)))
    return {
        "images": num_images,
        "image_size": image_size,
        "shapes_generate_images_per_s": round(gen_rate, 1),
        "litvision_index_s": round(index_s, 3),
        "litvision_items_per_s": round(ours_rate, 1),
        "torchvision_items_per_s": round(theirs_rate, 1),
        "ratio_litvision_over_torchvision": round(ours_rate / theirs_rate, 2),
        "litvision_train_transforms_items_per_s": round(train_rate, 1),
    }
