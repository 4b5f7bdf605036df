"""normalise_photo end to end through the box, plus the parent's reading of the child's output."""

from __future__ import annotations

import io
import random
import struct
import time

import pytest
from PIL import ExifTags, Image, PngImagePlugin

from ephemeral.media import box
from ephemeral.media.box import BoxLimits, BoxResult
from ephemeral.media.errors import MediaRejected
from ephemeral.media.photo import PhotoLimits, _parse_output, _rejection, normalise_photo
from ephemeral.media.photo_child import Refused, decode
from tests.media.samples import (
    animated_gif,
    heic_bytes,
    image_bytes,
    linear_rgb_icc,
    png_bomb,
    srgb_icc,
)
from tests.media.test_box import MODES

LIMITS = PhotoLimits()
SECRETS = [b"CanonMakeXYZ", b"ModelQQ-7", b"XmpSecretMarker", b"CommentSecretMarker"]
SECRETS += [b"IptcSecretMarker", b"Exif\0\0", b"ICC_PROFILE", b"http://ns.adobe.com/xap/1.0/"]
SECRETS += [b"Photoshop 3.0", b"8BIM"]


def close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def with_iptc(jpeg: bytes) -> bytes:
    """Insert an APP13 Photoshop/IPTC segment (caption) right after SOI; Pillow cannot write one."""
    caption = b"IptcSecretMarker"
    iptc = b"\x1c\x02\x78" + struct.pack(">H", len(caption)) + caption
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\0\0" + struct.pack(">I", len(iptc)) + iptc
    body = b"Photoshop 3.0\0" + resource
    return jpeg[:2] + b"\xff\xed" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def camera_jpeg() -> bytes:
    """60x30 stored, orientation 6 (turn 90° clockwise to view), red block at stored top-left."""
    im = Image.new("RGB", (60, 30), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 12, 12))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "CanonMakeXYZ"
    exif[ExifTags.Base.Model] = "ModelQQ-7"
    exif[ExifTags.Base.Orientation] = 6
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (51.0, 30.0, 12.5)
    gps[ExifTags.GPS.GPSLongitudeRef] = "W"
    gps[ExifTags.GPS.GPSLongitude] = (0.0, 7.0, 39.0)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
    xmp += b'02/22-rdf-syntax-ns#" xmlns:xmp="http://ns.adobe.com/xap/1.0/">XmpSecretMarker'
    xmp += b"</rdf:RDF></x:xmpmeta>"
    buf = io.BytesIO()
    im.save(
        buf,
        "JPEG",
        quality=95,
        exif=exif,
        xmp=xmp,
        icc_profile=srgb_icc(),
        comment=b"CommentSecretMarker",
    )
    return with_iptc(buf.getvalue())


def jpeg_markers(data: bytes) -> set[int]:
    """Every marker before the scan data."""
    markers, i = set(), 2
    while data[i] == 0xFF and data[i + 1] != 0xDA:
        markers.add(data[i + 1])
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return markers


@pytest.mark.parametrize("mode", MODES)
async def test_camera_jpeg_upright_and_stripped(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(box.MODE_ENV, mode)
    data = camera_jpeg()
    source = Image.open(io.BytesIO(data))
    assert source.getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the input really carries all this
    assert {"icc_profile", "xmp", "comment", "photoshop"} <= source.info.keys()
    assert all(secret in data for secret in SECRETS)

    result = await normalise_photo(data, LIMITS)

    assert (result.mime, result.kind, result.width, result.height) == (
        "image/jpeg",
        "image",
        30,
        60,
    )
    assert result.duration is None
    out = Image.open(io.BytesIO(result.data))
    assert (out.format, out.size, out.mode) == ("JPEG", (30, 60), "RGB")
    # Upright: the stored top-left corner is now the top-right one.
    assert close(out.getpixel((25, 4)), (255, 0, 0))  # type: ignore[arg-type]
    assert close(out.getpixel((4, 4)), (0, 0, 255))  # type: ignore[arg-type]
    assert close(out.getpixel((25, 55)), (0, 0, 255))  # type: ignore[arg-type]
    assert len(out.getexif()) == 0
    assert not {"exif", "icc_profile", "xmp", "comment", "photoshop"} & out.info.keys()
    assert not [secret for secret in SECRETS if secret in result.data]
    assert jpeg_markers(result.data) <= {0xE0, 0xDB, 0xC0, 0xC4}  # JFIF, tables, baseline frame


async def test_icc_profile_is_applied_then_dropped() -> None:
    grey = image_bytes("JPEG", (16, 16), (128, 128, 128), quality=100)
    plain = Image.open(io.BytesIO((await normalise_photo(grey, LIMITS)).data))
    assert close(plain.getpixel((8, 8)), (128, 128, 128), 3)  # type: ignore[arg-type]

    tagged = image_bytes(
        "JPEG", (16, 16), (128, 128, 128), quality=100, icc_profile=linear_rgb_icc()
    )
    result = await normalise_photo(tagged, LIMITS)
    out = Image.open(io.BytesIO(result.data))
    # Linear 0.5 is sRGB ~188: the pixels were converted, and the profile is gone.
    assert close(out.getpixel((8, 8)), (188, 188, 188), 4)  # type: ignore[arg-type]
    assert "icc_profile" not in out.info


async def test_heic_becomes_jpeg() -> None:
    result = await normalise_photo(heic_bytes((64, 48), "blue"), LIMITS)
    out = Image.open(io.BytesIO(result.data))
    assert (result.mime, out.format, out.size) == ("image/jpeg", "JPEG", (64, 48))
    assert close(out.getpixel((32, 24)), (0, 0, 255), 20)  # type: ignore[arg-type]


async def test_png_with_alpha_stays_png() -> None:
    im = Image.new("RGBA", (40, 30), (255, 0, 0, 255))
    im.paste((0, 0, 0, 0), (0, 0, 20, 30))
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "CanonMakeXYZ")
    info.add_itxt("XML:com.adobe.xmp", "XmpSecretMarker")
    buf = io.BytesIO()
    im.save(buf, "PNG", pnginfo=info, icc_profile=srgb_icc())
    result = await normalise_photo(buf.getvalue(), LIMITS)
    out = Image.open(io.BytesIO(result.data))
    assert (result.mime, out.format, out.mode, out.size) == ("image/png", "PNG", "RGBA", (40, 30))
    assert out.getpixel((5, 5))[3] == 0  # type: ignore[index]
    assert out.getpixel((35, 5)) == (255, 0, 0, 255)
    assert not {"Author", "XML:com.adobe.xmp", "icc_profile"} & out.info.keys()
    assert b"CanonMakeXYZ" not in result.data and b"XmpSecretMarker" not in result.data


async def test_png_with_opaque_alpha_becomes_jpeg() -> None:
    result = await normalise_photo(image_bytes("PNG", (20, 20), (0, 255, 0, 255)), LIMITS)
    assert result.mime == "image/jpeg"


def mode_image(mode: str, fmt: str, color: float | tuple[int, ...]) -> bytes:
    im = Image.new(mode, (40, 30), color)
    if mode == "P":
        im.info["transparency"] = 0
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "mime", "pixel"),
    [
        pytest.param(mode_image("L", "JPEG", 100), "image/jpeg", (100, 100, 100), id="grey-jpeg"),
        pytest.param(
            mode_image("CMYK", "JPEG", (0, 255, 255, 0)), "image/jpeg", (255, 0, 0), id="cmyk"
        ),
        pytest.param(
            mode_image("LA", "PNG", (100, 50)), "image/png", (100, 100, 100, 50), id="grey-alpha"
        ),
        pytest.param(mode_image("P", "PNG", 0), "image/png", (0, 0, 0, 0), id="palette-tRNS"),
        pytest.param(mode_image("P", "GIF", 0), "image/png", (0, 0, 0, 0), id="gif-transparent"),
        pytest.param(mode_image("I;16", "PNG", 30000), "image/jpeg", (117, 117, 117), id="16-bit"),
        pytest.param(mode_image("1", "PNG", 1), "image/jpeg", (255, 255, 255), id="1-bit"),
        pytest.param(
            mode_image("RGBA", "WEBP", (0, 0, 255, 100)),
            "image/png",
            (0, 0, 255, 100),
            id="webp-alpha",
        ),
    ],
)
async def test_pixel_modes(data: bytes, mime: str, pixel: tuple[int, ...]) -> None:
    result = await normalise_photo(data, LIMITS)
    out = Image.open(io.BytesIO(result.data))
    assert result.mime == mime
    assert out.mode == ("RGBA" if mime == "image/png" else "RGB")
    assert close(out.getpixel((5, 5)), pixel, 3)  # type: ignore[arg-type]


async def test_animated_gif_gives_its_first_frame() -> None:
    result = await normalise_photo(animated_gif("red", "lime"), LIMITS)
    out = Image.open(io.BytesIO(result.data))
    assert (result.mime, out.size) == ("image/jpeg", (40, 30))
    assert close(out.getpixel((20, 15)), (255, 0, 0))  # type: ignore[arg-type]


async def test_webp() -> None:
    result = await normalise_photo(image_bytes("WEBP", (50, 40), "blue"), LIMITS)
    assert (result.mime, result.width, result.height) == ("image/jpeg", 50, 40)


@pytest.mark.parametrize(
    ("size", "expected"), [((5000, 1000), (4096, 819)), ((900, 6000), (614, 4096))]
)
async def test_oversize_shrinks_to_longest_side(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    result = await normalise_photo(image_bytes("JPEG", size, "green"), LIMITS)
    assert (result.width, result.height) == expected
    assert Image.open(io.BytesIO(result.data)).size == expected


async def test_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = png_bomb(20_000)
    assert len(bomb) < 100_000
    # 400 MP would need 400 MB decoded; a 256 MiB address space proves it never was.
    limits = PhotoLimits(box=BoxLimits(memory_bytes=256 << 20, wall_seconds=20))
    started = time.monotonic()
    with pytest.raises(MediaRejected) as caught:
        await normalise_photo(bomb, limits)
    assert caught.value.code == "too-many-pixels"
    assert time.monotonic() - started < 5


async def test_pixel_limit_is_exact() -> None:
    limits = PhotoLimits(max_pixels=1000)
    assert (await normalise_photo(image_bytes("PNG", (40, 25)), limits)).width == 40
    with pytest.raises(MediaRejected) as caught:
        await normalise_photo(image_bytes("PNG", (40, 26)), limits)
    assert caught.value.code == "too-many-pixels"


NOISE = random.Random(7).randbytes(300)


def noisy_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.frombytes("RGB", (128, 128), random.Random(8).randbytes(128 * 128 * 3)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(noisy_jpeg()[: len(noisy_jpeg()) // 2], id="truncated-jpeg"),
        pytest.param(image_bytes("PNG")[:40], id="truncated-png"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + NOISE, id="png-magic-then-noise"),
        pytest.param(b"GIF89a\x10\x00\x10\x00" + NOISE, id="gif-magic-then-noise"),
        pytest.param(b"just some text, not a photo\n" * 20, id="text"),
        pytest.param(b"<svg xmlns='http://www.w3.org/2000/svg'/>", id="svg"),
        pytest.param(image_bytes("BMP"), id="bmp"),
        pytest.param(b"", id="empty"),
    ],
)
async def test_invalid_media(data: bytes) -> None:
    with pytest.raises(MediaRejected) as caught:
        await normalise_photo(data, LIMITS)
    assert caught.value.code == "invalid-media", caught.value.detail


def test_child_allow_list_refuses_other_pillow_formats() -> None:
    for fmt in ("BMP", "TIFF", "PPM", "ICO"):
        with pytest.raises(Refused) as caught:
            decode(image_bytes(fmt), 1_000_000)
        assert caught.value.exit_code == 10


async def test_timeout_is_processing_failed() -> None:
    limits = PhotoLimits(box=BoxLimits(wall_seconds=0.01))
    with pytest.raises(MediaRejected) as caught:
        await normalise_photo(image_bytes("JPEG"), limits)
    assert caught.value.code == "processing-failed"


async def test_starved_box_is_processing_failed() -> None:
    limits = PhotoLimits(box=BoxLimits(memory_bytes=24 << 20, wall_seconds=20))
    with pytest.raises(MediaRejected) as caught:
        await normalise_photo(image_bytes("JPEG"), limits)
    assert caught.value.code == "processing-failed"


def box_result(returncode: int, stdout: bytes = b"", stderr: bytes = b"") -> BoxResult:
    return BoxResult(returncode, stdout, stderr, "shm")


@pytest.mark.parametrize(
    ("returncode", "stderr", "code", "detail"),
    [
        (10, b'warn\n{"code": "invalid-media", "detail": "broken"}\n', "invalid-media", "broken"),
        (11, b"garbage", "too-many-pixels", "image has too many pixels"),
        (10, b'{"code": "too-many-pixels", "detail": "lie"}', "invalid-media", "not a supported"),
        (12, b"", "processing-failed", "photo processing failed (12)"),
        (-9, b"", "processing-failed", "killed (SIGKILL)"),
        (-40, b"", "processing-failed", "killed (signal 40)"),
        (1, b"Traceback", "processing-failed", "failed (1)"),
    ],
)
def test_exit_codes_map_to_rejections(
    returncode: int, stderr: bytes, code: str, detail: str
) -> None:
    rejected = _rejection(box_result(returncode, stderr=stderr))
    assert rejected.code == code and detail in rejected.detail


@pytest.mark.parametrize(
    "stdout",
    [
        b"",
        b"no header at all",
        b"{not json}\n" + image_bytes("JPEG"),
        b'{"mime": "image/jpeg", "width": 32, "height": 24, "size": 1}\n' + image_bytes("JPEG"),
        b'{"mime": "image/png", "width": 32, "height": 24, "size": %d}\n',
        b'{"mime": "image/gif", "width": 32, "height": 24, "size": %d}\n',
        b'{"mime": "image/jpeg", "width": 5000, "height": 24, "size": %d}\n',
        b'{"mime": "image/jpeg", "width": true, "height": 24, "size": %d}\n',
        b"[1, 2]\n",
    ],
)
def test_malformed_child_output_is_processing_failed(stdout: bytes) -> None:
    body = image_bytes("JPEG")
    if b"%d" in stdout:
        stdout = stdout % len(body) + body
    with pytest.raises(MediaRejected) as caught:
        _parse_output(stdout, LIMITS)
    assert caught.value.code == "processing-failed"


def test_well_formed_child_output() -> None:
    body = image_bytes("JPEG")
    header = b'{"mime": "image/jpeg", "width": 32, "height": 24, "size": %d}\n' % len(body)
    media = _parse_output(header + body, LIMITS)
    assert (media.data, media.mime, media.width, media.height) == (body, "image/jpeg", 32, 24)
