"""Video argv building, probe parsing and the contract checks, without running the box."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ephemeral.media.av_args import (
    EncodeOptions,
    OutputBounds,
    decode_check_argv,
    display_size,
    encode_argv,
    even_fit,
    finalise_argv,
    remux_eligible,
)
from ephemeral.media.av_child import Deadline, moov_first, zscale_available
from ephemeral.media.probe import (
    CODEC_WHITELIST,
    DEMUXERS,
    FORMAT_WHITELIST,
    Probe,
    Refused,
    Selection,
    Stream,
    check_input,
    input_options,
    parse_probe,
    probe_argv,
)

H264 = Stream(0, "video", "h264", "High", 40, "yuv420p", 1920, 1080, fps=Fraction(30))
AAC = Stream(1, "audio", "aac", "LC", channels=2, sample_rate=48000)
CLIP = Selection("video", H264, AAC, 10.0)
VOICE = Selection("audio", None, Stream(0, "audio", "opus", channels=1), 5.0)
BOUNDS = OutputBounds()


def value(argv: list[str], flag: str) -> str:
    assert flag in argv, (flag, argv)
    return argv[argv.index(flag) + 1]


def values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


@pytest.mark.parametrize("fmt", sorted(DEMUXERS))
def test_probe_argv_forces_the_demuxer_and_whitelists(fmt: str) -> None:
    argv = probe_argv("input.media", fmt)
    assert argv[0] == "ffprobe" and argv[-2:] == ["-i", "input.media"]
    assert "sh" not in argv and not any(a.startswith(("-c ", ";", "|")) for a in argv)
    assert value(argv, "-f") == DEMUXERS[fmt]
    assert argv.index("-f") < argv.index("-i")
    assert value(argv, "-format_whitelist") == FORMAT_WHITELIST
    assert "hls" not in FORMAT_WHITELIST.split(",") and "concat" not in FORMAT_WHITELIST
    assert value(argv, "-protocol_whitelist") == "file,pipe"
    assert value(argv, "-codec_whitelist").startswith(CODEC_WHITELIST)
    assert int(value(argv, "-probesize")) <= 32 << 20
    assert int(value(argv, "-analyzeduration")) <= 30_000_000
    assert ("-enable_drefs" in argv) == (DEMUXERS[fmt] == "mov")
    assert "-show_entries" in argv and "-show_format" in probe_argv("x", fmt, full=True)


def test_zscale_is_found_when_ffmpeg_has_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # the child works in its cwd, the job dir
    listing = subprocess.run(["ffmpeg", "-hide_banner", "-filters"], capture_output=True).stdout
    assert zscale_available(Deadline(30)) == (b" zscale " in listing)


def test_moov_first(tmp_path: Path) -> None:
    def box(kind: bytes, body: bytes = b"") -> bytes:
        return (8 + len(body)).to_bytes(4, "big") + kind + body

    large_free = (1).to_bytes(4, "big") + b"free" + (24).to_bytes(8, "big") + bytes(8)
    for layout, expected in [
        (box(b"ftyp", b"isom") + box(b"moov") + box(b"mdat", b"x"), True),
        (box(b"ftyp", b"isom") + large_free + box(b"moov") + box(b"mdat"), True),
        (box(b"ftyp", b"isom") + box(b"mdat", b"x") + box(b"moov"), False),
        (box(b"ftyp", b"isom") + b"\0\0\0\x02free", False),  # a size smaller than a header
        (box(b"ftyp", b"isom")[:6], False),
    ]:
        (tmp_path / "f.mp4").write_bytes(layout)
        assert moov_first(str(tmp_path / "f.mp4")) is expected


def test_unknown_container_is_refused() -> None:
    for fmt in ("hls", "concat", "image2", "jpeg"):
        with pytest.raises(Refused) as caught:
            input_options(fmt)
        assert caught.value.exit_code == 10


def test_encode_argv() -> None:
    argv = encode_argv("in.media", "out.mp4", "mov", CLIP, EncodeOptions(threads=3), zscale=True)
    assert argv[0] == "ffmpeg" and argv[argv.index("-i") + 1] == "in.media"
    before_input = argv[: argv.index("-i")]
    for flag, expected in input_options("mov").items():
        assert value(before_input, f"-{flag}") == expected
    assert value(before_input, "-max_pixels") == str(3840 * 2160)
    assert values(argv, "-map")[1] == "0:1" and values(argv, "-map")[0].startswith("[")
    assert "[0:0]" in value(argv, "-filter_complex")
    for flag, expected in {
        "-map_metadata": "-1",
        "-map_chapters": "-1",
        "-fflags": "+bitexact",
        "-flags:v": "+bitexact",
        "-c:v": "libx264",
        "-profile:v": "high",
        "-level:v": "4.2",
        "-preset": "veryfast",
        "-crf": "23",
        "-threads": "3",
        "-filter_threads": "3",
        "-colorspace": "bt709",
        "-color_trc": "bt709",
        "-color_primaries": "bt709",
        "-c:a": "aac",
        "-profile:a": "aac_low",
        "-ar": "48000",
        "-ac": "2",
        "-t": "62",
        "-f": "mp4",
    }.items():
        assert values(argv, flag)[-1] == expected, flag
    assert {"-sn", "-dn", "-nostdin"} <= set(argv) and argv[-1] != "in.media"
    graph = value(argv, "-filter_complex")
    assert "scale=" in graph and "w=1920" in graph and "format=yuv420p" in graph
    assert "zscale" not in graph and "fps=" not in graph  # SDR at 30 fps


def test_encode_argv_hdr_and_frame_rate() -> None:
    hdr = Stream(0, "video", "hevc", "Main 10", 153, "yuv420p10le", 3840, 2160, fps=Fraction(120))
    hdr = Stream(**{**hdr.__dict__, "color_transfer": "smpte2084", "color_primaries": "bt2020"})
    clip = Selection("video", hdr, None, 3.0)
    graph = value(
        encode_argv("i", "o", "mp4", clip, EncodeOptions(), zscale=True), "-filter_complex"
    )
    assert "fps=60" in graph and "tonemap=desat=0:tonemap=hable" in graph
    assert graph.index("zscale") < graph.index("tonemap") and "tin=smpte2084" in graph
    fallback = encode_argv("i", "o", "mp4", clip, EncodeOptions(), zscale=False)
    assert "zscale" not in value(fallback, "-filter_complex")
    assert "out_color_matrix=bt709" in value(fallback, "-filter_complex")
    assert "-c:a" not in fallback and "-map" in fallback and len(values(fallback, "-map")) == 1


def test_audio_only_argv() -> None:
    argv = encode_argv("i", "o", "ogg", VOICE, EncodeOptions(), zscale=False)
    assert values(argv, "-f") == ["ogg", "ipod"] and value(argv, "-movflags") == "+faststart"
    assert "-vn" in argv and "-filter_complex" not in argv
    assert (value(argv, "-ac"), value(argv, "-b:a"), value(argv, "-map")) == ("1", "64k", "0:0")
    final = finalise_argv("in.media", "o.mp4", "mp4", VOICE, 2, intermediate=False)
    assert values(final, "-f") == ["mov", "ipod"]  # forced demuxer in, M4A out


def test_finalise_and_decode_check_argv() -> None:
    final = finalise_argv("in.media", "out.mp4", "mp4", CLIP, 2, intermediate=False)
    assert values(final, "-map") == ["0:0", "0:1"] and value(final, "-c") == "copy"
    assert value(final, "-movflags") == "+faststart" and value(final, "-map_metadata") == "-1"
    assert {"-sn", "-dn"} <= set(final) and value(final, "-format_whitelist") == FORMAT_WHITELIST
    check = decode_check_argv("in.media", "mp4", CLIP, 2)
    assert "-xerror" in check and values(check, "-f")[-1] == "null" and "-" in check
    assert values(check, "-map") == ["0:0", "0:1"]


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1920, 1080), (1920, 1080)),
        ((3840, 2160), (1920, 1080)),
        ((2160, 3840), (1080, 1920)),
        ((1080, 1080), (1080, 1080)),
        ((2000, 2000), (1080, 1080)),
        ((4096, 1000), (1920, 468)),
        ((63, 47), (62, 46)),
        ((3, 3), (2, 2)),
    ],
)
def test_even_fit_examples(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert even_fit(*size) == expected


@given(st.integers(200, 3840), st.integers(200, 3840))
def test_even_fit_properties(width: int, height: int) -> None:
    out_w, out_h = even_fit(width, height)
    assert out_w % 2 == 0 and out_h % 2 == 0
    assert max(out_w, out_h) <= 1920 and min(out_w, out_h) <= 1080
    assert out_w <= width and out_h <= height  # never upscaled
    assert (out_w - out_h) * (width - height) >= 0  # orientation kept (or square)
    assert abs(out_w / out_h - width / height) / (width / height) <= 0.01


@given(st.integers(1, 20000), st.integers(1, 20000))
def test_even_fit_never_breaks_bounds(width: int, height: int) -> None:
    out_w, out_h = even_fit(width, height)
    assert out_w % 2 == 0 and out_h % 2 == 0 and out_w >= 2 and out_h >= 2
    assert max(out_w, out_h) <= 1920 and min(out_w, out_h) <= 1080


def test_display_size_applies_sar_then_rotation() -> None:
    base = Stream(0, "video", width=64, height=48)
    assert display_size(base) == (64, 48)
    assert display_size(Stream(0, "video", width=64, height=48, rotation=-90)) == (48, 64)
    assert display_size(Stream(0, "video", width=64, height=48, rotation=180)) == (64, 48)
    assert display_size(Stream(0, "video", width=64, height=48, sar=Fraction(2))) == (128, 48)
    assert display_size(Stream(0, "video", width=64, height=48, sar=Fraction(1, 2))) == (64, 96)


PHONE_PROBE = {
    "streams": [
        {
            "index": 0,
            "codec_name": "hevc",
            "profile": "Main",
            "codec_type": "video",
            "width": 1920,
            "height": 1080,
            "sample_aspect_ratio": "1:1",
            "pix_fmt": "yuv420p",
            "level": 123,
            "color_range": "tv",
            "color_space": "bt709",
            "avg_frame_rate": "30000/1001",
            "duration": "12.345000",
            "disposition": {"attached_pic": 0},
            "side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}],
        },
        {"index": 1, "codec_type": "audio", "codec_name": "aac", "profile": "LC", "channels": 2},
        {"index": 2, "codec_type": "video", "codec_name": "mjpeg", "width": 600, "height": 600,
         "disposition": {"attached_pic": 1}},
        {"index": 3, "codec_type": "data", "codec_name": "none"},
    ],
    "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "12.400000"},
}  # fmt: skip


def test_parse_probe() -> None:
    probe = parse_probe(json.dumps(PHONE_PROBE).encode())
    assert probe.duration == 12.4 and len(probe.streams) == 4
    video = probe.video
    assert video is not None and video.index == 0 and video.rotation == -90
    assert video.display_matrix and video.fps == Fraction(30000, 1001) and video.level == 123
    assert probe.audio is not None and probe.audio.index == 1 and probe.audio.channels == 2
    assert probe.streams[2].attached_pic and probe.streams[3].codec_name == "none"
    assert display_size(video) == (1080, 1920)


def test_parse_probe_oddities() -> None:
    raw = {
        "streams": [
            {"index": 0, "codec_type": "audio", "duration": "7.5", "avg_frame_rate": "0/0"}
        ],
        "format": {"duration": "N/A", "tags": {"title": "x"}},
    }
    probe = parse_probe(json.dumps(raw).encode())
    assert probe.duration == 7.5 and probe.streams[0].fps is None and probe.tags == {"title"}
    nan = parse_probe(b'{"format": {"duration": "nan"}, "streams": [{"width": "wide"}]}')
    assert nan.duration is None and nan.streams[0].width == 0
    for bad in (b"", b"not json", b"[]", b'{"streams": []}', b'{"format": 1}'):
        with pytest.raises(Refused) as caught:
            parse_probe(bad)
        assert caught.value.exit_code == 10
    many = {"format": {}, "streams": [{"index": i} for i in range(100)]}
    with pytest.raises(Refused):
        parse_probe(json.dumps(many).encode())


def probe_of(*streams: Stream, duration: float | None = 10.0) -> Probe:
    return Probe("x", duration, streams)


def refusal(probe: Probe, fmt: str = "mp4", **kw: Any) -> int:
    limits: dict[str, Any] = {"max_duration": 60.0, "max_width": 3840, "max_height": 2160, **kw}
    with pytest.raises(Refused) as caught:
        check_input(probe, fmt, **limits)
    return caught.value.exit_code


def test_check_input() -> None:
    assert check_input(probe_of(H264, AAC), "mp4", 60, 3840, 2160).kind == "video"
    assert refusal(probe_of()) == 13
    assert refusal(probe_of(Stream(0, "data"), Stream(1, "subtitle"))) == 13
    assert refusal(probe_of(H264, duration=90)) == 12
    assert refusal(probe_of(AAC, duration=60.5), "ogg") == 12
    assert check_input(probe_of(AAC, duration=60.0), "ogg", 60, 3840, 2160).kind == "audio"
    big = Stream(0, "video", "h264", width=3841, height=2160)
    tall = Stream(0, "video", "h264", width=2160, height=3840)
    assert refusal(probe_of(big)) == 11
    assert check_input(probe_of(tall), "mov", 60, 3840, 2160).video == tall  # either orientation
    assert refusal(probe_of(Stream(0, "video", "h264", width=2200, height=2200))) == 11
    assert refusal(probe_of(Stream(0, "video", "h264"))) == 10  # no frame size at all
    # The probe decides the kind: audio-only Matroska/WebM or MP4 is a voice note...
    assert check_input(probe_of(AAC), "matroska", 60, 3840, 2160).kind == "audio"
    # ...and an audio container's video (an MP3's cover, Ogg Theora) is never used.
    voice = check_input(probe_of(H264, AAC), "mp3", 60, 3840, 2160)
    assert voice.kind == "audio" and voice.video is None
    assert refusal(probe_of(H264), "ogg") == 13
    cover = Stream(2, "video", "mjpeg", width=600, height=600, attached_pic=True)
    assert check_input(probe_of(cover, AAC), "mp4", 60, 3840, 2160).kind == "audio"


def test_remux_eligibility() -> None:
    def with_v(**change: Any) -> Selection:
        return Selection("video", Stream(**{**H264.__dict__, **change}), AAC, 10.0)

    assert remux_eligible("mp4", CLIP, BOUNDS) and remux_eligible("mov", CLIP, BOUNDS)
    assert remux_eligible("mp4", Selection("video", H264, None, 1.0), BOUNDS)
    assert not remux_eligible("matroska", CLIP, BOUNDS)
    for change in (
        {"profile": "Main"},
        {"profile": "High 10"},
        {"pix_fmt": "yuv420p10le"},
        {"level": 51},
        {"width": 3840, "height": 2160},
        {"fps": Fraction(120)},
        {"fps": None},
        {"display_matrix": True, "rotation": 90.0},
        {"color_transfer": "smpte2084"},
        {"color_space": "bt470bg"},
        {"color_range": "pc"},
        {"sar": Fraction(4, 3)},
        {"width": 1919},
    ):
        assert not remux_eligible("mp4", with_v(**change), BOUNDS), change
    he = Stream(1, "audio", "aac", "HE-AAC", channels=2)
    assert not remux_eligible("mp4", Selection("video", H264, he, 1.0), BOUNDS)
    six = Stream(1, "audio", "aac", "LC", channels=6)
    assert not remux_eligible("mp4", Selection("video", H264, six, 1.0), BOUNDS)


HLS = b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
CONCAT = b"ffconcat version 1.0\nfile '/etc/passwd'\n"


@pytest.mark.parametrize(
    ("data", "demuxer"), [(HLS, "hls"), (CONCAT, "concat")], ids=["hls", "concat"]
)
def test_whitelists_stop_playlists(tmp_path: Path, data: bytes, demuxer: str) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    # Control: left to itself, ffprobe recognises the playlist and goes for the listed file.
    free = subprocess.run(["ffprobe", "-v", "error", str(path)], capture_output=True)
    assert f"[{demuxer} @".encode() in free.stderr
    ours = subprocess.run(probe_argv(str(path), "mp4"), capture_output=True)
    assert ours.returncode != 0 and f"[{demuxer} @".encode() not in ours.stderr
    # Even when the demuxer itself is asked for, the format whitelist refuses it.
    argv = probe_argv(str(path), "mp4")
    argv[argv.index("-f") + 1] = demuxer
    forced = subprocess.run(argv, capture_output=True)
    assert forced.returncode != 0 and b"not on whitelist" in forced.stderr
    assert b"root:x:0:0" not in ours.stdout + ours.stderr + forced.stdout + forced.stderr


# The parent side, against a stand-in child that speaks the protocol.
