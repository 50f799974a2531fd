"""Read image files as uint8 RGB tensors (3, H, W), and cheaply spot unreadable files up front.

`read_rgb` is the one reader of training, evaluation, predict and the sample grids (detection
calls it with `exif=False`). JPEG, PNG and still WebP decode with torchvision.io (libjpeg-turbo,
libpng, libwebp straight into a tensor); GIF, animated WebP and anything else (BMP, TIFF, ...)
through PIL. Every form comes out as the picture a viewer shows, as uint8 RGB:
- grey (L), CMYK and palette images are converted to RGB;
- 16-bit images (grey or RGB PNG, TIFF) are scaled to 8 bits (65535 -> 255), not clipped or read as 0-255;
- transparency (RGBA, LA, a palette or grey image with a transparent colour, a GIF's transparent index)
  is composited on WHITE, the background a browser page or an image viewer shows it on, and what
  Hugging Face transformers' `convert_to_rgb` (Image.alpha_composite on (255, 255, 255)) and vLLM's
  `multimodal/image.py` `rgba_to_rgb` do; dropping alpha instead (PIL's convert("RGB"), torchvision's ImageReadMode.RGB)
  shows whatever colour the transparent pixels happen to store, often black;
- the EXIF orientation of a phone's photo is applied (a portrait shot stored sideways is upright);
- an animated GIF, WebP or APNG gives its first frame (as PIL and torchvision show a still), and
  the first such file of a process is noted on the terminal: the other frames are not used.
`to_channels` then gives the model's channel count (1: ITU-R 601 luma, as PIL's convert("L") and
torchvision's rgb_to_grayscale); the value range (uint8 -> float, normalised) is the batch
normalisation's (data/transforms/classification.py).
"""

from __future__ import annotations

import logging
import struct
import warnings
from pathlib import Path

import numpy as np
import torch

from litvision.errors import UserError

log = logging.getLogger(__name__)

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".apng", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".ppm", ".pgm")
_TORCHVISION_FORMATS = (".jpg", ".jpeg", ".png", ".apng", ".webp")
_JPEG = (".jpg", ".jpeg")
# torchvision 0.29 announces that its decoders will move to TorchCodec; until then
# they remain the fastest path to a uint8 tensor, and the notice would repeat in every worker.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision")

_JPEG_EOI = b"\xff\xd9"
_PNG_IEND = b"IEND"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TAIL_BYTES = 1024
BACKGROUND = 255  # white: see the module docstring


class UnreadableImage(UserError):
    """An image file that fails to decode; `path` and `reason` say which and why."""

    def __init__(self, message: str, path: Path | None = None, reason: str = "") -> None:
        # One positional message: DataLoader workers re-raise exceptions as `type(e)(message)`.
        super().__init__(message)
        self.path = path
        self.reason = reason


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMG_EXTENSIONS and not path.name.startswith(".")


# PIL's integer modes: 16-bit grey ("I;16*") and 32-bit ("I", what 16-bit TIFFs and PNGs may open as).
_PIL_WIDE = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_PIL_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")
_noted_animation = False


def _note_frames(path: Path, frames: int) -> None:
    """Say once per process that an animation counts as its first frame (more would flood a training log)."""
    global _noted_animation
    if frames <= 1:
        return
    if _noted_animation:
        log.debug("%s is animated (%d frames): its first frame is used", path, frames)
        return
    _noted_animation = True
    from litvision.utils.warn import warn_user

    warn_user(
        log,
        f"{path} is animated ({frames} frames): its first frame is used, as for every animated "
        "GIF, WebP or PNG (noted once).",
        all_ranks=True,
    )


def _composite(image: torch.Tensor) -> torch.Tensor:
    """uint8 RGBA (4, H, W) -> RGB on a white background; RGB passes through."""
    if image.shape[0] != 4:
        return image
    rgb, alpha = image[:3], image[3:]
    if bool((alpha == 255).all()):
        return rgb.contiguous()
    a = alpha.to(torch.int32)
    # Round to nearest, as PIL's alpha_composite does (results agree within 1).
    out = (rgb.to(torch.int32) * a + BACKGROUND * (255 - a) + 127) // 255
    return out.to(torch.uint8)


def _pil_rgb(path: Path, exif: bool) -> torch.Tensor:
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        _note_frames(path, int(getattr(im, "n_frames", 1) or 1))
        im.seek(0)
        transparent = im.mode in _PIL_ALPHA or "transparency" in im.info
        if exif:
            im = ImageOps.exif_transpose(im)
        if im.mode in _PIL_WIDE:
            # convert("RGB") would clip 16-bit values at 255: scale them as torchvision does (>> 8).
            wide = np.asarray(im).astype(np.int64)
            im = Image.fromarray((np.clip(wide, 0, 65535) >> 8).astype(np.uint8), mode="L")
            transparent = False
        arr = np.asarray(im.convert("RGBA" if transparent else "RGB"))
    return _composite(torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous())


def _png_header(data: bytes) -> tuple[int, bool, int]:
    """(colour type, has a tRNS chunk, frames) of a PNG from its chunks before the first IDAT.

    Colour type 4 and 6 carry an alpha channel; tRNS makes a palette, grey or RGB colour transparent;
    an APNG's acTL chunk gives its frame count. Not a PNG: (-1, False, 1)."""
    if not data.startswith(_PNG_SIGNATURE) or len(data) < 26:
        return -1, False, 1
    colour, trns, frames = data[25], False, 1
    at = len(_PNG_SIGNATURE)
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        if kind == b"acTL" and at + 12 <= len(data):
            frames = int(struct.unpack(">I", data[at + 8 : at + 12])[0])
        trns = trns or kind == b"tRNS"
        if kind in (b"IDAT", b"IEND"):
            break
        at += 12 + length
    return colour, trns, frames


def _as_uint8(image: torch.Tensor) -> torch.Tensor:
    """torchvision's decoders give 16-bit PNGs as uint16: scale them to uint8 (65535 -> 255)."""
    if image.dtype != torch.uint8:
        from torchvision.transforms.v2.functional import to_dtype

        image = to_dtype(image, torch.uint8, scale=True)
    return image


def _torchvision_rgb(path: Path, exif: bool) -> torch.Tensor | None:
    """Decode with torchvision.io; None where PIL decodes instead: an animated WebP (torchvision reads
    still ones only) and a PNG with a transparent colour (tRNS)."""
    from torchvision.io import ImageReadMode, decode_image, read_file

    data = read_file(str(path))
    suffix = path.suffix.lower()
    if suffix in _JPEG:  # no alpha in a JPEG; its decoder converts grey and CMYK to RGB itself
        return decode_image(data, mode=ImageReadMode.RGB, apply_exif_orientation=exif)
    mode = ImageReadMode.RGB_ALPHA
    if suffix != ".webp":
        colour, trns, frames = _png_header(data[:65536].numpy().tobytes())
        _note_frames(path, frames)
        if trns:
            return None  # a transparent palette/grey colour: PIL expands tRNS to alpha
        if colour not in (4, 6):
            # No alpha to composite; and torchvision 0.29 mis-reads a palette PNG as RGB_ALPHA.
            mode = ImageReadMode.RGB
    try:
        image = decode_image(data, mode=mode, apply_exif_orientation=exif)
    except RuntimeError:
        if suffix == ".webp":
            return None  # animated (or broken): PIL decides
        raise
    return _composite(_as_uint8(image[0] if image.ndim == 4 else image))


def read_rgb(path: str | Path, exif: bool = True) -> torch.Tensor:
    """Decode one image file to a uint8 (3, H, W) RGB tensor, as a viewer shows it (see the module
    docstring: 16 bits scaled to 8, transparency on white, EXIF orientation applied, an animation's
    first frame); a file that fails names itself.

    `exif=False` keeps the stored orientation: detection boxes are read against the stored pixels, as
    torchvision's detection references and pycocotools read them."""
    path = Path(path)
    try:
        image = _torchvision_rgb(path, exif) if path.suffix.lower() in _TORCHVISION_FORMATS else None
        if image is None:
            image = _pil_rgb(path, exif)
        return image.contiguous()
    except Exception as e:  # noqa: BLE001 - any decoder failure means the same thing to the user
        reason = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
        raise UnreadableImage(
            f"Cannot decode image {path} ({reason}); "
            "replace or delete the file, or set data.skip_corrupt=true to leave unreadable files out.",
            path=path,
            reason=reason,
        ) from None


def to_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """A decoded uint8 RGB image (3, H, W) -> the model's `channels` (1: grey by ITU-R 601 luma, as
    PIL's convert("L"); 3: unchanged). Training, evaluation and predict all convert here."""
    if channels == 1 and image.shape[-3] == 3:
        from torchvision.transforms.v2.functional import rgb_to_grayscale

        return rgb_to_grayscale(image)
    if channels == 3 and image.shape[-3] == 1:
        return image.expand(*image.shape[:-3], 3, *image.shape[-2:]).contiguous()
    return image


def check_image(path: Path) -> str | None:
    """Why the file cannot be used, or None. Cheap: reads the header and the last kilobyte, not the pixels.

    A header PIL cannot identify means a corrupt or non-image file; a JPEG without
    its end-of-image marker (or a PNG without IEND) was cut short, e.g. by an
    interrupted download. Both would otherwise fail in the middle of an epoch.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            fmt = im.format
            if im.width <= 0 or im.height <= 0:
                return "it has no pixels"
    except UnidentifiedImageError:
        return "it is not an image PIL can identify (corrupt header or not an image)"
    except OSError as e:
        return f"it cannot be opened ({e})"
    if fmt in ("JPEG", "PNG"):
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - _TAIL_BYTES))
            tail = f.read()
        marker = _JPEG_EOI if fmt == "JPEG" else _PNG_IEND
        if marker not in tail:
            return f"the {fmt} data is truncated (no end marker)"
    return None
