"""Images the app shows: item pictures, Pillow-drawn placeholder tiles, and upload validation."""

from __future__ import annotations

import hashlib
import textwrap
from dataclasses import dataclass
from pathlib import Path

from mmfedrec.atomic import atomic_path

MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # uploads above this are refused before decoding
MAX_UPLOAD_SIDE = 4096  # pixels, either side
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
TILE_SIZE = (200, 300)  # width, height: poster-shaped


class PlaceholderTiles:
    """Tiles for items without an image, drawn once per title with Pillow and kept in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def tile(self, title: str) -> str:
        """Path of a PNG tile with the title on a colour derived from it (stable across runs)."""
        digest = hashlib.blake2b(title.encode(), digest_size=8).hexdigest()
        path = self.folder / f"tile-{digest}.png"
        if not path.is_file():
            self._draw(title, digest, path)
        return str(path)

    @staticmethod
    def _draw(title: str, digest: str, path: Path) -> None:
        from PIL import Image, ImageDraw

        hue = int(digest[:2], 16)
        background = (60 + hue % 80, 70 + (hue * 7) % 90, 90 + (hue * 13) % 100)
        image = Image.new("RGB", TILE_SIZE, background)
        draw = ImageDraw.Draw(image)
        draw.rectangle((8, 8, TILE_SIZE[0] - 9, TILE_SIZE[1] - 9), outline=(235, 235, 235), width=2)
        lines = textwrap.wrap(title, width=18)[:8] or ["(untitled)"]
        y = TILE_SIZE[1] // 2 - 8 * len(lines)
        for line in lines:
            draw.text((18, y), line, fill=(250, 250, 250))
            y += 16
        draw.text((18, TILE_SIZE[1] - 30), "no image", fill=(220, 220, 220))
        with atomic_path(path) as partial:
            image.save(partial, format="PNG")


@dataclass(frozen=True)
class UploadCheck:
    ok: bool
    message: str  # why it was refused; empty when ok


def check_upload(path: str | Path | None) -> UploadCheck:
    """Whether an uploaded file is an image the app accepts: type, size in bytes and in pixels."""
    if path is None or str(path) == "":
        return UploadCheck(False, "Upload an image (PNG, JPEG, WebP, GIF or BMP) to search with it.")
    path = Path(path)
    if not path.is_file():
        return UploadCheck(False, "The uploaded file could not be read; please upload it again.")
    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        return UploadCheck(
            False, f"That file is {size / 2**20:.1f} MB; images up to {MAX_UPLOAD_BYTES // 2**20} MB are accepted."
        )
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            image_format = image.format
            if max(width, height) > MAX_UPLOAD_SIDE:
                return UploadCheck(
                    False,
                    f"That image is {width}x{height} px; images up to {MAX_UPLOAD_SIDE} px a side are accepted.",
                )
            image.verify()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return UploadCheck(False, f"{path.name} is not an image we can read; upload a PNG, JPEG, WebP, GIF or BMP.")
    if image_format is None or f".{image_format.lower()}" not in (*IMAGE_SUFFIXES, ".mpo"):
        return UploadCheck(False, f"{image_format or 'This'} images are not supported; upload a PNG, JPEG or WebP.")
    return UploadCheck(True, "")
