"""One image reader (data/pipeline/decode.read_rgb, what training, evaluation, predict and the sample grids
read files with) gives every form a camera or a tool writes as the same uint8 RGB picture a viewer shows:
8/16-bit grey and RGB, palette (with and without a transparent colour), CMYK, LA/RGBA composited on white,
WebP (still, with alpha, animated), EXIF-rotated photos, animated GIF/APNG (first frame)."""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_cfg
from PIL import Image
from test_predict import write_corrupt_jpeg

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


def _on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """What a viewer shows of a transparent picture on a white page."""
    a = alpha.astype(np.float64)[..., None]
    return np.round((rgb.astype(np.float64) * a + 255.0 * (255.0 - a)) / 255.0).astype(np.uint8)


def _png16_rgb(path: Path, rgb16: np.ndarray) -> None:
    """A 16-bit RGB PNG (48 bits a pixel), written by hand: PIL cannot write one."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    h, w, _ = rgb16.shape
    rows = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _decoded_by_pil(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def forms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, np.ndarray]]:
    """form -> (file, the (H, W, 3) uint8 picture a viewer shows for it)."""
    folder = tmp_path_factory.mktemp("forms")
    img = _picture()
    grey = _grey(img)
    grey3 = np.repeat(grey[..., None], 3, axis=2)
    # Transparency from fully transparent (left) to opaque (right): only compositing on white gives
    # the left columns white; dropping alpha shows the stored colours there.
    alpha = np.repeat(np.linspace(0, 255, W).round().astype(np.uint8)[None], H, axis=0)
    out: dict[str, tuple[Path, np.ndarray]] = {}

    def save(name: str, pil: Image.Image, expected: np.ndarray, **kw) -> None:
        path = folder / name
        pil.save(path, **kw)
        out[name] = (path, expected)

    save("rgb8.png", Image.fromarray(img), img)
    save("grey8.png", Image.fromarray(grey), grey3)
    # The same picture at 16 bits: its 8-bit value in the high byte, noise in the low one (what a
    # 16-bit camera adds), so only a scaling (>> 8, 65535 -> 255) gives the 8-bit picture back.
    low = np.random.default_rng(1).integers(0, 256, size=img.shape, dtype=np.uint16)
    wide = grey.astype(np.uint16) * 256 + low[..., 0]
    save("grey16.png", Image.fromarray(wide), grey3)
    save("grey16.tif", Image.fromarray(wide), grey3)
    _png16_rgb(folder / "rgb16.png", img.astype(np.uint16) * 256 + low)
    out["rgb16.png"] = (folder / "rgb16.png", img)
    pal = Image.fromarray(img).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    save("palette.png", pal, np.asarray(pal.convert("RGB")))
    # A palette PNG and a GIF whose first palette entry is transparent (tRNS / the GIF's transparent index).
    index = np.asarray(pal)
    clear = int(index[0, 0])
    shown = np.where((index == clear)[..., None], np.uint8(255), np.asarray(pal.convert("RGB")))
    save("palette_transparent.png", pal, shown, transparency=clear)
    save("transparent.gif", pal, shown, transparency=clear, optimize=False)
    save(
        "la.png",
        Image.fromarray(np.dstack([grey, alpha]), "LA"),
        np.repeat(_on_white(grey[..., None], alpha), 3, 2),
    )
    rgba = Image.fromarray(np.dstack([img, alpha]), "RGBA")
    save("rgba.png", rgba, _on_white(img, alpha))
    save("rgba.webp", rgba, _on_white(img, alpha), lossless=True, exact=True)
    save("still.webp", Image.fromarray(img), img, lossless=True)
    cmyk = Image.fromarray(img).convert("CMYK")
    save("cmyk.tif", cmyk, np.asarray(cmyk.convert("RGB")))
    for name, pil in (("rgb8.jpg", Image.fromarray(img)), ("cmyk.jpg", cmyk)):
        pil.save(folder / name, quality=95)
        out[name] = (folder / name, _decoded_by_pil(folder / name))
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
    negative = Image.fromarray(255 - img)
    save("animated.png", Image.fromarray(img), img, save_all=True, append_images=[negative])
    save("animated.webp", Image.fromarray(img), img, save_all=True, append_images=[negative], lossless=True)
    return out


FORMS = [
    "rgb8.png", "rgb8.jpg", "grey8.png", "grey16.png", "grey16.tif", "rgb16.png", "palette.png",
    "palette_transparent.png", "transparent.gif", "la.png", "rgba.png", "rgba.webp", "still.webp",
    "cmyk.jpg", "cmyk.tif", "bmp.bmp", "exif6.png", "exif6.tif", "animated.gif", "animated.png",
    "animated.webp",
]  # fmt: skip
# JPEG decoders (libjpeg-turbo in torchvision, PIL's libjpeg) may round their IDCT differently.
TOLERANCE = {"rgb8.jpg": 3, "cmyk.jpg": 3}


def _diff(got: torch.Tensor, expected: np.ndarray) -> int:
    ref = torch.from_numpy(np.ascontiguousarray(expected)).permute(2, 0, 1).to(torch.int16)
    return int((got.to(torch.int16) - ref).abs().max())


@pytest.mark.parametrize("form", FORMS)
def test_every_form_reads_as_the_picture_a_viewer_shows(forms: dict, form: str) -> None:
    """Catches: 16-bit values read as 0-255 (clipped, truncated to their low byte, or the uint16 tensor kept
    and later divided by 255: the 16-bit picture then differs from its 8-bit copy), alpha dropped instead
    of composited on white (la/rgba/palette_transparent/transparent.gif show their stored colours), EXIF
    orientation ignored (30x40 instead of 40x30), an animation read as a stack of frames (4-D: the loader's
    collate failed on it) or an animated WebP refused (torchvision's decoder reads still ones only)."""
    path, expected = forms[form]
    got = read_rgb(path)
    assert got.dtype == torch.uint8 and got.shape == (3, *expected.shape[:2]), (got.dtype, got.shape)
    assert _diff(got, expected) <= TOLERANCE.get(form, 1), f"{form}: off by up to {_diff(got, expected)}"


@pytest.mark.parametrize("form", ["grey16.png", "animated.gif", "exif6.png", "rgb8.png", "rgba.png"])
def test_detection_reads_the_same_pixels_in_their_stored_orientation(forms: dict, form: str) -> None:
    """Detection's reader is the same reader, except that boxes were drawn on the stored pixels: no EXIF
    rotation. Catches: detection decoding on its own again (the 16-bit PNG as uint16, the GIF as a stack)
    and EXIF applied under the boxes (the photo turns, its boxes do not)."""
    from litvision.data.detection import read_image

    path, viewed = forms[form]
    stored = np.rot90(viewed, k=1) if form.startswith("exif") else viewed
    got = read_image(path)
    assert got.dtype == torch.uint8 and tuple(got.shape) == (3, *stored.shape[:2]), (got.dtype, got.shape)
    assert _diff(got, stored) <= 1, f"{form}: off by up to {_diff(got, stored)}"


# -- train, predict and the sample grid agree on every form ---------------------------------------
SIZE = 30  # the short side of every form: resize is a no-op, the centre crop the same for all paths


@pytest.fixture(scope="module")
def folder_run(forms: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A real training (1 epoch, one loader worker) and a real predict on a class folder holding every
    form, with a file that fails its header check and one that fails to decode, both skipped."""
    from litvision.build import build_datamodule
    from litvision.commands.predict import run_predict
    from litvision.train import train

    base = tmp_path_factory.mktemp("folder_run")
    root = base / "imgs"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    for name in FORMS:
        shutil.copy(forms[name][0], root / "a" / name)
    for name in ("rgb8.png", "grey8.png", "rgba.png", "bmp.bmp"):
        shutil.copy(forms[name][0], root / "b" / name)
    (root / "b" / "header.png").write_bytes(b"not an image at all")
    write_corrupt_jpeg(root / "b" / "decode.jpg")
    data = [
        "data=image_folder", f"data.root={root}", f"data.image_size={SIZE}", f"data.resize_size={SIZE}",
        "data.train_crop=none", "data.hflip=0", "data.val_fraction=0.2", "data.skip_corrupt=true",
        "data.check_duplicates=off", "data.batch_size=8",
    ]  # fmt: skip
    runs = base / "runs"
    summary = train(
        compose_cfg(
            [*data, "data.num_workers=1", "model.net.in_channels=3", "model.net.width=8", "trainer=cpu",
             "trainer.max_epochs=1", "callbacks=none", "logger=csv"],
            runs,
        )
    )  # fmt: skip
    ckpt = Path(summary["best_checkpoint"])
    for name in ("header.png", "decode.jpg"):
        shutil.copy(root / "b" / name, root / "a" / name)  # predict reads the folder of every form
    predicted = run_predict(
        compose_cfg([*data, f"ckpt_path='{ckpt}'", f"input={root / 'a'}"], runs, config_name="predict"),
        base / "predict",
    )
    dms = {}
    for channels, stats in ((3, ""), (1, "[0.5]")):
        extra = [] if channels == 3 else ["data.in_channels=1", f"data.mean={stats}", f"data.std={stats}"]
        dm = build_datamodule(compose_cfg([*data, "data.num_workers=0", *extra], runs))
        dm.prepare_data()
        dm.setup("fit")
        dms[channels] = dm
    return {"root": root, "data": data, "summary": summary, "predict": predicted, "ckpt": ckpt, "dms": dms}


def test_skipped_files_are_counted_in_both_summaries(folder_run: dict) -> None:
    """Catches: a file skipped at decode time in a loader worker not counted (the worker's skip not
    noted in the shared log: count 1), the up-front skips left out of the count, and predict's count
    dropped."""
    skipped = folder_run["summary"]["data_checks"]["unreadable_skipped"]
    root = folder_run["root"]
    assert skipped["count"] == 2 and set(skipped["files"]) == {
        str(root / "b/header.png"),
        str(root / "b/decode.jpg"),
    }
    predicted = folder_run["predict"]
    assert predicted["images_skipped"] == 2 and predicted["images"] == len(FORMS)


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("form", FORMS)
def test_train_predict_and_grid_see_the_same_tensor(
    forms: dict, folder_run: dict, form: str, channels: int
) -> None:
    """For each form, the DataModule's dataset item (uint8, before normalisation), predict's input (its
    reader and the checkpoint's inference transform) and the sample grid's picture (the loader's
    normalising collate, un-normalised as the grid does) are one tensor: the viewer's picture in the
    model's channels. Catches: predict reading a file its own way (read_checked without EXIF: exif6.png
    differs), the channel conversion left out of the dataset (in_channels=1: it gives 3 channels while
    predict gives 1), and the grid un-normalising with other statistics (every form differs)."""
    from torch.utils.data import DataLoader

    from litvision.callbacks.sample_grid import unnormalize
    from litvision.commands.predict import read_checked
    from litvision.data.pipeline.decode import to_channels
    from litvision.data.transforms.classification import NormalizingCollate, eval_transform
    from litvision.tasks.restore import inference_transform
    from litvision.utils.safe_load import load_checkpoint

    dm = folder_run["dms"][channels]
    path = folder_run["root"] / "a" / form
    split = next(ds for ds in dm.datasets.values() if path in [ds.source.paths[int(j)] for j in ds.indices])
    k = [split.source.paths[int(j)] for j in split.indices].index(path)
    item, _ = split[k]
    viewed = to_channels(torch.from_numpy(np.ascontiguousarray(forms[form][1])).permute(2, 0, 1), channels)
    expected = eval_transform(dm.transforms)(viewed)
    assert item.dtype == torch.uint8 and item.shape == (channels, SIZE, SIZE)
    tol = TOLERANCE.get(form, 1)
    assert int((item.to(torch.int16) - expected.to(torch.int16)).abs().max()) <= tol

    if channels == 3:  # predict with the trained checkpoint
        ckpt = load_checkpoint(folder_run["ckpt"])
        cfg = compose_cfg(
            [*folder_run["data"], f"ckpt_path='{folder_run['ckpt']}'", "input=."],
            folder_run["root"],
            config_name="predict",
        )
        model_input = inference_transform(ckpt, cfg, folder_run["ckpt"])(read_checked(path, 10**8))
    else:  # no grey model trained: the inference transform its checkpoint would record
        model_input = type(dm).inference_transform(dict(dm.hparams))(read_checked(path, 10**8))
    assert torch.allclose(model_input, dm.normalize(item), atol=1e-6)

    batch, _ = next(
        iter(DataLoader(split, batch_size=len(split), collate_fn=NormalizingCollate(dm.mean, dm.std)))
    )
    grid = unnormalize(batch[k : k + 1], dm.mean, dm.std)[0]
    assert torch.allclose(grid, item.float() / 255, atol=1e-5)
