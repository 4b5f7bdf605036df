"""Photo normalisation of a 12 MP JPEG against plain Pillow in the same boxed child."""

from __future__ import annotations

import asyncio
import io
import sys
import time

from PIL import ExifTags, Image

from bench.harness import REPEATS, Figure
from ephemeral.media.box import run_boxed
from ephemeral.media.photo import PhotoLimits, normalise_photo

WIDTH, HEIGHT = 4000, 3000

# The baseline: what a service with no hardening at all would do to the same bytes, with the same
# encoder settings as ours (quality, Huffman optimisation), so the ratio is our pipeline's cost.
PLAIN_PILLOW = (
    "import io, sys\n"
    "from PIL import Image, ImageOps\n"
    "im = ImageOps.exif_transpose(Image.open(io.BytesIO(sys.stdin.buffer.read())))\n"
    "out = io.BytesIO()\n"
    "im.save(out, 'JPEG', quality={quality}, optimize=True)\n"
    "sys.stdout.buffer.write(out.getvalue())\n"
)


def photo_12mp() -> bytes:
    """Gradients plus noise (so the encoder has real work), EXIF orientation 6 and a GPS IFD."""
    size = (WIDTH, HEIGHT)
    noise = Image.effect_noise(size, 48)
    red = Image.linear_gradient("L").resize(size)
    green = Image.radial_gradient("L").resize(size)
    blue = Image.linear_gradient("L").rotate(90).resize(size)
    bands = tuple(Image.blend(band, noise, 0.3) for band in (red, green, blue))
    im = Image.merge("RGB", bands)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(
        {1: "N", 2: (52.0, 22.0, 1.5), 3: "E", 4: (4.0, 53.0, 10.0)}
    )
    out = io.BytesIO()
    im.save(out, "JPEG", quality=92, exif=exif)
    return out.getvalue()


async def _ours(data: bytes, limits: PhotoLimits) -> float:
    started = time.perf_counter()
    result = await normalise_photo(data, limits)
    elapsed = time.perf_counter() - started
    assert (result.width, result.height) == (HEIGHT, WIDTH), result  # turned upright
    return elapsed


async def _plain(data: bytes, limits: PhotoLimits) -> float:
    argv = [sys.executable, "-I", "-c", PLAIN_PILLOW.format(quality=limits.jpeg_quality)]
    started = time.perf_counter()
    result = await run_boxed(argv, data, limits.box)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-2000:]
    assert Image.open(io.BytesIO(result.stdout)).size == (HEIGHT, WIDTH)
    return elapsed


async def _measure() -> dict[str, Figure]:
    data, limits = photo_12mp(), PhotoLimits()
    ours = Figure(f"photo normalisation, 12 MP JPEG ({len(data) >> 10} KiB)", "s")
    base = Figure("plain Pillow open + exif_transpose + save, same box", "s")
    await _ours(data, limits)  # warm-up, not counted
    await _plain(data, limits)
    for _ in range(REPEATS):  # interleaved, so drift hits both alike
        ours.samples.append(await _ours(data, limits))
        base.samples.append(await _plain(data, limits))
    return {"photo_norm": ours, "baseline_photo_norm": base}


def measure() -> dict[str, Figure]:
    return asyncio.run(_measure())
