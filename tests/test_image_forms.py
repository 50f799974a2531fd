"""One image reader (data/pipeline/decode.read_rgb, what training, evaluation, predict and the sample grids
read files with) gives every form a camera or a tool writes as the same uint8 RGB picture a viewer shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from litvision.data.pipeline.decode import read_rgb

H, W = 30, 40


def _picture() -> np.ndarray:
    """An RGB picture with a different value in each corner, so a rotation or a flip shows."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    img[:5, :5] = (255, 0, 0)
    return img


def _grey(img: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(img).convert("L"))


@pytest.fixture(scope="module")
def forms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, np.ndarray]]:
    """form -> (file, the (H, W, 3) uint8 picture a viewer shows for it)."""
    folder = tmp_path_factory.mktemp("forms")
    img = _picture()
    grey = _grey(img)
    out: dict[str, tuple[Path, np.ndarray]] = {}

    def save(name: str, pil: Image.Image, expected: np.ndarray, **kw) -> None:
        path = folder / name
        pil.save(path, **kw)
        out[name] = (path, expected)

    save("rgb8.png", Image.fromarray(img), img)
    grey3 = np.repeat(grey[..., None], 3, axis=2)
    save("grey8.png", Image.fromarray(grey), grey3)
    # The same grey picture at 16 bits: its 8-bit value in the high byte, noise in the low one (what a
    # 16-bit camera adds), so only a scaling (>> 8, 65535 -> 255) gives the 8-bit picture back.
    low = np.random.default_rng(1).integers(0, 256, size=grey.shape, dtype=np.uint16)
    wide = grey.astype(np.uint16) * 256 + low
    save("grey16.png", Image.fromarray(wide), grey3)
    save("grey16.tif", Image.fromarray(wide), grey3)
    pal = Image.fromarray(img).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    save("palette.png", pal, np.asarray(pal.convert("RGB")))
    save("bmp.bmp", Image.fromarray(img), img)
    # A phone's portrait photo stored sideways: EXIF Orientation 6 = rotate 90 degrees clockwise to view.
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = Image.fromarray(img)
    save("exif6.png", stored, np.rot90(img, k=-1), exif=exif)
    save("exif6.tif", stored, np.rot90(img, k=-1), exif=exif)
    # Two frames: the first is the picture, the second its negative.
    first, second = Image.fromarray(img).convert("P"), Image.fromarray(255 - img).convert("P")
    save("animated.gif", first, np.asarray(first.convert("RGB")), save_all=True, append_images=[second])
    save("animated.png", Image.fromarray(img), img, save_all=True, append_images=[Image.fromarray(255 - img)])
    return out


@pytest.mark.parametrize(
    "form",
    ["rgb8.png", "grey8.png", "grey16.png", "grey16.tif", "palette.png", "bmp.bmp", "exif6.png", "exif6.tif",
     "animated.gif", "animated.png"],
)  # fmt: skip
def test_every_form_reads_as_the_picture_a_viewer_shows(forms: dict, form: str) -> None:
    """Catches: 16-bit values read as 0-255 (clipped, truncated to their low byte, or the uint16 tensor kept
    and later divided by 255: the 16-bit grey picture then differs from its 8-bit copy), EXIF orientation ignored (30x40 instead of
    40x30), and an animation read as a stack of frames (4-D: the loader's collate failed on it)."""
    path, expected = forms[form]
    got = read_rgb(path)
    assert got.dtype == torch.uint8 and got.shape == (3, *expected.shape[:2]), (got.dtype, got.shape)
    diff = (got.permute(1, 2, 0).to(torch.int16) - torch.from_numpy(expected.copy()).to(torch.int16)).abs()
    assert int(diff.max()) <= 1, f"{form}: off by up to {int(diff.max())}"


@pytest.mark.parametrize("form", ["grey16.png", "animated.gif", "exif6.png", "rgb8.png"])
def test_detection_reads_the_same_pixels_in_their_stored_orientation(forms: dict, form: str) -> None:
    """Detection's reader is the same reader, except that boxes were drawn on the stored pixels: no EXIF
    rotation. Catches: detection decoding on its own again (the 16-bit PNG as uint16, the GIF as a stack)
    and EXIF applied under the boxes (the photo turns, its boxes do not)."""
    from litvision.data.detection import read_image

    path, viewed = forms[form]
    stored = np.rot90(viewed, k=1) if form.startswith("exif") else viewed
    got = read_image(path)
    assert got.dtype == torch.uint8 and tuple(got.shape) == (3, *stored.shape[:2]), (got.dtype, got.shape)
    diff = (got.permute(1, 2, 0).to(torch.int16) - torch.from_numpy(stored.copy()).to(torch.int16)).abs()
    assert int(diff.max()) <= 1, f"{form}: off by up to {int(diff.max())}"
