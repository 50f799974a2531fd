"""Any folder of images, one sub-folder per class: `root/<class>/<image>` (sub-folders inside a class count too).

    make train EXP=<experiment> ARGS="data=image_folder data.root=/data/my_photos"
    ... data.test_dir=/data/my_photos_test      # a separate test folder with the same classes
    ... data.test_fraction=0.1                  # or carve a test split out of root

Classes are the sorted sub-folder names. Validation (and test, with test_fraction)
is a stratified, seeded split per class. Every form a camera or tool writes (grey,
16-bit, CMYK, palette, transparency, EXIF-rotated, animated) is read by the one reader,
pipeline/decode.read_rgb, then given `data.in_channels`. Every file is checked up front (header and end marker, not
the pixels): an unreadable file stops the run before training with its path, or
is left out with a warning when `data.skip_corrupt=true`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from litvision.data.classification import ClassificationDataModule, RawSplits
from litvision.data.datasets.registry import register_dataset
from litvision.data.datasets.sources import FileImages
from litvision.data.pipeline.decode import IMG_EXTENSIONS, check_image, is_image_file
from litvision.data.pipeline.filecache import cached
from litvision.data.pipeline.resolvers import class_folders
from litvision.data.pipeline.splits import stratified_split
from litvision.data.transforms.classification import IMAGENET_MEAN, IMAGENET_STD
from litvision.errors import UserError

log = logging.getLogger(__name__)

_LAYOUT = "one sub-folder per class with the images inside (root/<class>/<image>)"


def require_class_folders(root: Path) -> list[str]:
    """The class sub-folders of root; a missing root or one without sub-folders says how to lay it out."""
    if not root.is_dir():
        raise UserError(f"Image folder not found: {root}. Set data.root to a folder with {_LAYOUT}.")
    found = class_folders(root)
    if not found:
        loose = [p.name for p in root.iterdir() if p.is_file() and is_image_file(p)]
        hint = (
            f" It has {len(loose)} images directly inside: move them into class sub-folders." if loose else ""
        )
        raise UserError(f"{root} has no class sub-folders; data.root needs {_LAYOUT}.{hint}")
    return found


def image_files(folder: Path) -> list[str]:
    """The image files under `folder` (sub-folders too; symlinked folders not followed, as `rglob`),
    in `Path` order (by path component). `os.scandir` tells files from folders without a `stat` per
    entry, which at a million files is most of the scan's time."""
    out: list[str] = []
    stack = [str(folder)]
    nested = False
    while stack:
        with os.scandir(stack.pop()) as entries:
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                    nested = True
                elif (
                    not e.name.startswith(".")
                    and os.path.splitext(e.name)[1].lower() in IMG_EXTENSIONS
                    and e.is_file()
                ):
                    out.append(e.path)
    # The split is drawn over this order: keep the order `sorted(Path(...).rglob("*"))` gave. In a flat
    # folder every path has the same parent, so plain string order is that order, at a third of the cost.
    if nested:
        out.sort(key=lambda p: p.split(os.sep))
    else:
        out.sort()
    return out


def scan_folder(root: Path, classes: list[str] | None = None) -> tuple[list[str], list[str], np.ndarray]:
    """(class names, image paths, labels) of an image folder; `classes` fixes the class list (a test folder)."""
    found = require_class_folders(root)
    if classes is not None and found != classes:
        raise UserError(
            f"{root} has classes {found} but the training folder has {classes}; "
            "the test folder needs the same class sub-folders."
        )
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(found):
        files = image_files(root / name)
        if not files:
            raise UserError(
                f"Class folder {root / name} has no images (looked for {', '.join(IMG_EXTENSIONS)}); "
                "add images to it or remove the folder."
            )
        paths += files
        labels += [label] * len(files)
    return found, paths, np.asarray(labels, dtype=np.int64)


def drop_unreadable(paths: list[str], labels: np.ndarray, skip: bool) -> tuple[list[str], np.ndarray]:
    """Check every file cheaply; raise naming the bad ones, or (skip=True) leave them out with a warning."""
    # Results of unchanged files come from the file-check cache (pipeline/filecache.py); only good
    # results are kept there, so a bad file is looked at again (and named) at every start.
    results, _ = cached("checks", paths, lambda i: check_image(paths[i]), keep=lambda why: why is None)
    bad = [(p, why) for p, why in zip(paths, results, strict=True) if why is not None]
    if not bad:
        return paths, labels
    listing = "; ".join(f"{p} ({why})" for p, why in bad[:5]) + (
        f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
    )
    if not skip:
        raise UserError(
            f"{len(bad)} unreadable image file(s): {listing}. Replace or delete them, "
            "or set data.skip_corrupt=true to leave them out."
        )
    from litvision.utils.warn import warn_user

    # It changes what the run trains on: the terminal must show it, not only the run's log file.
    warn_user(log, f"Skipping {len(bad)} unreadable image file(s) (data.skip_corrupt=true): {listing}")
    bad_set = {p for p, _ in bad}
    keep = np.array([p not in bad_set for p in paths], dtype=bool)
    return [p for p, k in zip(paths, keep, strict=True) if k], labels[keep]


@register_dataset(
    "image_folder",
    kind="classification",
    num_classes=None,  # one class per sub-folder
    channels=3,
    native_size=None,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    fixture="litvision.data.fixtures.classification:make_image_folder",
)
class ImageFolderDataModule(ClassificationDataModule):
    def __init__(
        self,
        root: str,
        test_dir: str | None = None,
        test_fraction: float = 0.0,
        skip_corrupt: bool = False,
        check_files: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(root=root, **kwargs)
        self.test_dir = Path(test_dir).expanduser() if test_dir else None
        self.skipped: int = 0
        self.skipped_files: list[str] = []  # left out by the up-front check
        self._skip_log: Path | None = None
        if test_fraction and self.test_dir is not None:
            raise UserError("Set data.test_dir or data.test_fraction, not both.")
        if not 0.0 <= test_fraction < 1.0 or test_fraction + self.hparams.val_fraction >= 1.0:
            raise UserError(
                f"data.test_fraction={test_fraction} with data.val_fraction={self.hparams.val_fraction} "
                "leave nothing to train on; keep their sum below 1."
            )
        if self._root_expected_now():
            # Listing the class folders is cheap: a wrong data.num_classes fails before any model is built.
            if not self.root.is_dir():
                raise UserError(self._root_missing_message())
            self._check_num_classes(len(require_class_folders(self.root)), f" in {self.root}")

    def _root_expected_now(self) -> bool:
        """False for datasets that can still be downloaded in prepare_data."""
        return True

    def _root_missing_message(self) -> str:
        return f"Image folder not found: {self.root}. Set data.root to a folder with {_LAYOUT}."

    def _checked(self, paths: list[str], labels: np.ndarray) -> tuple[list[str], np.ndarray]:
        kept, kept_labels = drop_unreadable(paths, labels, self.hparams.skip_corrupt)
        self.skipped += len(paths) - len(kept)
        kept_set = set(kept)
        self.skipped_files += [str(p) for p in paths if p not in kept_set]
        return kept, kept_labels

    def _file_sources(self) -> list[FileImages]:
        sources = {id(ds.source): ds.source for ds in self.datasets.values()}
        return [s for s in sources.values() if isinstance(s, FileImages)]

    def _record_skipped(self) -> None:
        """Count the files skipped (data.skip_corrupt=true) in summary.json's `data_checks`: those the
        up-front check left out and those that failed to decode in any loader process so far."""
        if not self.hparams.skip_corrupt:
            return  # an unreadable file stops the run instead
        decoded = sorted(
            {f for s in self._file_sources() for f in s.skipped_files()} - set(self.skipped_files)
        )
        files = self.skipped_files + decoded
        self.data_checks["unreadable_skipped"] = {"count": len(files), "files": files[:20]}

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if self._skip_log is None and self.hparams.skip_corrupt:
            import shutil
            import tempfile
            import weakref

            self._skip_log = Path(tempfile.mkdtemp(prefix="litvision-skipped-"))
            weakref.finalize(self, shutil.rmtree, self._skip_log, ignore_errors=True)
            for source in self._file_sources():
                source.skip_log = self._skip_log
        self._record_skipped()

    def teardown(self, stage: str) -> None:
        # After fit, validate and test: the decode failures met during them are counted too.
        self._record_skipped()

    def _read(self) -> RawSplits:
        if not self.root.is_dir():
            raise UserError(self._root_missing_message())
        hp = self.hparams
        classes, paths, labels = scan_folder(self.root)
        self.skipped = 0
        self.skipped_files = []
        if hp.check_files:
            paths, labels = self._checked(paths, labels)
        test = None
        if self.test_dir is not None:
            _, test_paths, test_labels = scan_folder(self.test_dir, classes)
            if hp.check_files:
                test_paths, test_labels = self._checked(test_paths, test_labels)
            test = FileImages(test_paths, test_labels, hp.skip_corrupt, self.in_channels)
        for label, name in enumerate(classes):
            if not np.any(labels == label):
                raise UserError(
                    f"Class folder {self.root / name} has no readable images left; "
                    "add images or remove the folder."
                )
        test_indices = None
        if hp.test_fraction:
            test_indices = stratified_split(labels, (hp.test_fraction,), hp.seed + 1)[1]
        return RawSplits(
            train=FileImages(paths, labels, hp.skip_corrupt, self.in_channels),
            test=test,
            test_indices=test_indices,
            class_names=classes,
        )
