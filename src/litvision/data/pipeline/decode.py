"""Read image files as uint8 RGB tensors (3, H, W), and cheaply spot unreadable files up front.

JPEG, PNG, WebP and GIF decode with torchvision.io (libjpeg-turbo/libpng straight
into a tensor, no PIL image in between); anything else (BMP, TIFF, ...) through
PIL. Both convert grayscale, CMYK, RGBA (alpha dropped) and palette images to RGB, and
every image comes out the way a photo viewer shows it:
- 16-bit images (PNG, TIFF) are scaled to 8 bits (65535 -> 255), not clipped or read as 0-255;
- the EXIF orientation of a phone's photo is applied (a portrait shot stored sideways is upright);
- an animated GIF, WebP or APNG gives its first frame.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from litvision.errors import UserError

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".ppm", ".pgm")
_TORCHVISION_FORMATS = (".jpg", ".jpeg", ".png", ".webp", ".gif")
# torchvision 0.29 announces that its decoders will move to TorchCodec; until then
# they remain the fastest path to a uint8 tensor, and the notice would repeat in every worker.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision")

_JPEG_EOI = b"\xff\xd9"
_PNG_IEND = b"IEND"
_TAIL_BYTES = 1024


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


def _pil_rgb(path: Path, exif: bool) -> torch.Tensor:
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im.seek(0)
        if exif:
            im = ImageOps.exif_transpose(im)
        if im.mode in _PIL_WIDE:
            # convert("RGB") would clip 16-bit values at 255: scale them as torchvision does (>> 8).
            wide = np.asarray(im).astype(np.int64)
            im = Image.fromarray((np.clip(wide, 0, 65535) >> 8).astype(np.uint8), mode="L")
        arr = np.asarray(im.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def _as_uint8_rgb(image: torch.Tensor) -> torch.Tensor:
    """torchvision's decoders give every frame of an animation (N, 3, H, W) and 16-bit PNGs as uint16."""
    if image.ndim == 4:
        image = image[0]
    if image.dtype != torch.uint8:
        from torchvision.transforms.v2.functional import to_dtype

        image = to_dtype(image, torch.uint8, scale=True)
    return image.contiguous()


def read_rgb(path: str | Path, exif: bool = True) -> torch.Tensor:
    """Decode one image file to a uint8 (3, H, W) RGB tensor, as a photo viewer shows it (EXIF orientation
    applied, 16 bits scaled to 8, an animation's first frame); a file that fails names itself.

    `exif=False` keeps the stored orientation: detection boxes are read against the stored pixels, as
    torchvision's detection references and pycocotools read them."""
    path = Path(path)
    try:
        if path.suffix.lower() in _TORCHVISION_FORMATS:
            from torchvision.io import ImageReadMode, decode_image, read_file

            data = read_file(str(path))
            return _as_uint8_rgb(decode_image(data, mode=ImageReadMode.RGB, apply_exif_orientation=exif))
        return _pil_rgb(path, exif)
    except Exception as e:  # noqa: BLE001 - any decoder failure means the same thing to the user
        reason = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
        raise UnreadableImage(
            f"Cannot decode image {path} ({reason}); "
            "replace or delete the file, or set data.skip_corrupt=true to leave unreadable files out.",
            path=path,
            reason=reason,
        ) from None


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
