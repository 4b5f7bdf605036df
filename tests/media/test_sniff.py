"""sniff() on real files of every accepted format, on look-alikes it must refuse, and on noise."""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ephemeral.media import sniff as s
from ephemeral.media.sniff import SNIFF_BYTES, Sniffed, sniff
from tests.media.samples import animated_gif, ffmpeg_samples, heic_bytes, image_bytes


@pytest.fixture(scope="module")
def av_samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return ffmpeg_samples(tmp_path_factory.mktemp("av"))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(image_bytes("JPEG"), s.JPEG, id="jpeg"),
        pytest.param(image_bytes("PNG"), s.PNG, id="png"),
        pytest.param(image_bytes("WEBP"), s.WEBP, id="webp"),
        pytest.param(image_bytes("GIF"), s.GIF, id="gif87a"),
        pytest.param(animated_gif(), s.GIF, id="gif89a"),
        pytest.param(heic_bytes(), s.HEIC, id="heic"),
    ],
)
def test_images(data: bytes, expected: Sniffed) -> None:
    assert sniff(data[:SNIFF_BYTES]) == expected
    assert expected.kind == "image"


def test_gif_versions_really_differ() -> None:
    assert image_bytes("GIF").startswith(b"GIF87a")
    assert animated_gif().startswith(b"GIF89a")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mp4", s.MP4),
        ("mov", s.MOV),
        ("m4v", s.MP4),
        ("3gp", s.MP4),
        ("mkv", s.MATROSKA),
        ("webm", s.WEBM),
        # Audio-only WebM: the magic cannot tell, so it is "video" until the probe says otherwise.
        ("webm-audio", s.WEBM),
        ("m4a", s.M4A),
        ("ogg", s.OGG),
        ("mp3-id3", s.MP3),
        ("mp3-mpeg1", s.MP3),
        ("mp3-mpeg2", s.MP3),
        ("wav", s.WAV),
        ("aac-adts", s.AAC),
    ],
)
def test_audio_video(av_samples: dict[str, bytes], name: str, expected: Sniffed) -> None:
    assert sniff(av_samples[name][:SNIFF_BYTES]) == expected


def test_raw_mp3_starts_with_frame_sync(av_samples: dict[str, bytes]) -> None:
    assert av_samples["mp3-mpeg1"][:2] == b"\xff\xfb"
    assert av_samples["mp3-mpeg2"][:2] == b"\xff\xf3"
    assert av_samples["aac-adts"][:2] == b"\xff\xf1"


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = b"ftyp" + major + b"\0\0\0\0" + b"".join(compatible)
    return (len(body) + 4).to_bytes(4, "big") + body + b"\0\0\0\x08free"


@pytest.mark.parametrize(
    ("brand", "expected"),
    [
        *((b, s.HEIC) for b in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"hevm", b"hevs")),
        *((b, s.HEIF) for b in (b"mif1", b"msf1")),
        *((b, s.MP4) for b in (b"isom", b"iso2", b"mp41", b"mp42", b"avc1", b"M4V ", b"3gp5")),
        *((b, s.MP4) for b in (b"3gp4", b"3g2a", b"dash")),
        (b"qt  ", s.MOV),
        (b"M4A ", s.M4A),
        (b"M4B ", s.M4A),
        (b"avif", None),
        (b"M4P ", None),
        (b"zzzz", None),
    ],
)
def test_ftyp_major_brand(brand: bytes, expected: Sniffed | None) -> None:
    assert sniff(ftyp(brand)) == expected


def test_ftyp_compatible_brand_only_when_major_unknown() -> None:
    assert sniff(ftyp(b"zzzz", b"zzzz", b"heic")) == s.HEIC
    # A known-but-refused major brand is final: AVIF does not pass as HEIF through mif1.
    assert sniff(ftyp(b"avif", b"mif1", b"miaf")) is None
    assert sniff(ftyp(b"isom", b"heic")) == s.MP4


def test_only_the_head_counts() -> None:
    data = b"\0" * SNIFF_BYTES + image_bytes("PNG")
    assert sniff(data) is None


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "hello")
    return buf.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff", id="one-byte"),
        pytest.param(b"\xff\xd8", id="jpeg-too-short"),
        pytest.param(b"hello, world\n" * 10, id="text"),
        pytest.param(b"<!DOCTYPE html><html><body>hi</body></html>", id="html"),
        pytest.param(
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', id="svg"
        ),
        pytest.param(b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>", id="bare-svg"),
        pytest.param(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", id="pdf"),
        pytest.param(_zip(), id="zip"),
        pytest.param(b'{"json": true}', id="json"),
        pytest.param(image_bytes("BMP"), id="bmp"),
        pytest.param(image_bytes("TIFF"), id="tiff"),
        pytest.param(b"RIFF\x24\0\0\0AVI LIST", id="riff-avi"),
        pytest.param(Path(sys.executable).resolve().read_bytes()[:SNIFF_BYTES], id="elf"),
    ],
)
def test_refused(data: bytes) -> None:
    assert sniff(data) is None


KNOWN = {v for v in vars(s).values() if isinstance(v, Sniffed)}
MAGICS = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF", b"GIF89a", b"\x1a\x45\xdf\xa3", b"ID3"]


@given(st.binary(max_size=4 * SNIFF_BYTES))
def test_noise_never_crashes(data: bytes) -> None:
    result = sniff(data)
    assert result is None or result in KNOWN
    assert result == sniff(data[:SNIFF_BYTES])


@given(st.sampled_from(MAGICS), st.binary(max_size=SNIFF_BYTES))
def test_magic_prefixed_noise_never_crashes(magic: bytes, tail: bytes) -> None:
    assert sniff(magic + tail) in KNOWN | {None}


@given(st.binary(min_size=4, max_size=4), st.binary(max_size=2 * SNIFF_BYTES))
def test_ftyp_noise_never_crashes(size: bytes, tail: bytes) -> None:
    assert sniff(size + b"ftyp" + tail) in KNOWN | {None}
