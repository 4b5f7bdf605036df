"""ffmpeg argv for the av box (via ffmpeg-python), its frame arithmetic, and the output contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Final

import ffmpeg

from ephemeral.media.errors import EXIT_INVALID_MEDIA, EXIT_PROCESSING_FAILED, EXIT_TOO_LONG
from ephemeral.media.probe import Probe, Refused, Selection, Stream, input_options

PRESETS: Final = frozenset({"ultrafast", "superfast", "veryfast", "faster", "fast", "medium"})
# swscale's names for the input matrices ffprobe reports; anything else is guessed by size.
_SWS_MATRICES: Final = dict(bt709="bt709", bt470bg="bt470", smpte170m="smpte170m", fcc="fcc")
_SWS_MATRICES.update(smpte240m="smpte240m", bt2020nc="bt2020", bt2020c="bt2020")
_Z_TRANSFERS: Final = ("smpte2084", "arib-std-b67", "bt2020-10", "bt2020-12", "bt709")
_Z_MATRICES: Final = ("bt2020nc", "bt709", "bt470bg", "smpte170m")
_MAXRATE: Final = "20M"  # VBV cap well inside level 4.2 (62.5 Mbit/s): noise cannot blow up
_GLOBAL: Final = ("-nostdin", "-hide_banner", "-v", "error")


@dataclass(frozen=True)
class OutputBounds:
    long_side: int = 1920
    short_side: int = 1080
    max_fps: int = 60
    max_level: int = 42


@dataclass(frozen=True)
class EncodeOptions:
    threads: int = 2
    crf: int = 23
    preset: str = "veryfast"
    max_duration: float = 60.0
    max_pixels: int = 3840 * 2160  # the decoder refuses bigger frames, even mid-stream
    bounds: OutputBounds = field(default_factory=OutputBounds)


def even_fit(
    width: int, height: int, long_max: int = 1920, short_max: int = 1080
) -> tuple[int, int]:
    """The output frame: within long_max x short_max in either orientation, never upscaled,
    even sides (4:2:0), aspect kept as well as whole pixels allow (the short side follows
    the rounded long side, so the error is at most one pixel of the short side)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"no frame size: {width}x{height}")
    long, short = max(width, height), min(width, height)
    scale = min(Fraction(1), Fraction(long_max, long), Fraction(short_max, short))
    out_long = max(2, int(long * scale) // 2 * 2)
    exact_short = Fraction(out_long * short, long)
    nearest_even = 2 * round(exact_short / 2)
    out_short = max(2, min(nearest_even, short // 2 * 2, short_max // 2 * 2))
    return (out_long, out_short) if width >= height else (out_short, out_long)


def display_size(video: Stream) -> tuple[int, int]:
    """What a viewer sees: sample aspect ratio applied, then the rotation."""
    width, height = video.width, video.height
    if video.sar > 1:
        width = max(1, round(width * video.sar))
    elif video.sar < 1:
        height = max(1, round(height / video.sar))
    quarter_turn = abs((video.rotation % 180) - 90) < 1  # ±90, 270: what autorotate transposes
    return (height, width) if quarter_turn else (width, height)


def remux_eligible(fmt: str, selection: Selection, bounds: OutputBounds) -> bool:
    """Input that already keeps the output contract, in an MP4/MOV, may be copied as is."""
    v, a = selection.video, selection.audio
    if fmt not in ("mp4", "mov") or v is None:
        return False
    long, short = max(v.width, v.height), min(v.width, v.height)
    video_ok = (
        (v.codec_name, v.profile, v.pix_fmt) == ("h264", "High", "yuv420p")
        and v.level is not None
        and 0 < v.level <= bounds.max_level
        and long <= bounds.long_side
        and short <= bounds.short_side
        and v.width % 2 == 0
        and v.height % 2 == 0
        and v.sar == 1
        and v.fps is not None
        and v.fps <= bounds.max_fps
        and not v.display_matrix
        and not v.hdr
        and {v.color_space, v.color_transfer, v.color_primaries} <= {None, "bt709"}
        and v.color_range in (None, "tv")
    )
    audio_ok = a is None or ((a.codec_name, a.profile) == ("aac", "LC") and 0 < a.channels <= 2)
    return video_ok and audio_ok


def _input(path: str, fmt: str, threads: int, **extra: str) -> Any:
    return ffmpeg.input(path, **input_options(fmt), threads=str(threads), **extra)


def _compile(out: Any, threads: int) -> list[str]:
    argv: list[str] = out.global_args(*_GLOBAL, "-filter_threads", str(threads)).compile()
    return argv


def _video_filters(stream: Any, video: Stream, opts: EncodeOptions, zscale: bool) -> Any:
    width, height = even_fit(*display_size(video), opts.bounds.long_side, opts.bounds.short_side)
    if video.fps is not None and video.fps > opts.bounds.max_fps:
        stream = stream.filter("fps", opts.bounds.max_fps)
    if video.hdr and zscale:
        stream = _tonemap(stream, video, width, height)
    else:
        # Without zscale an HDR input is only re-matrixed: dull, but upright and in contract.
        hd = max(video.width, video.height) >= 1280
        matrix = _SWS_MATRICES.get(video.color_space or "", "bt709" if hd else "bt601")
        stream = stream.filter(
            "scale",
            w=width,
            h=height,
            flags="bicubic",
            in_color_matrix=matrix,
            out_color_matrix="bt709",
            out_range="tv",
        )
    return stream.filter("setsar", 1).filter("format", "yuv420p")


def _tonemap(stream: Any, video: Stream, width: int, height: int) -> Any:
    """PQ/HLG BT.2020 to SDR BT.709, tone-mapped in linear light (hable keeps highlights).
    Only values zscale knows go in: it fails on anything else (bt2020c, say)."""
    source = {
        "tin": _known(video.color_transfer, _Z_TRANSFERS, "bt2020-10"),
        "min": _known(video.color_space, _Z_MATRICES, "bt2020nc"),
        "pin": _known(video.color_primaries, ("bt2020", "bt709"), "bt2020"),
        "rin": "pc" if video.color_range == "pc" else "tv",
    }
    stream = stream.filter("zscale", w=width, h=height, t="linear", npl=100, p="bt2020", **source)
    stream = stream.filter("format", "gbrpf32le")
    stream = stream.filter("zscale", tin="linear", pin="bt2020", t="linear", p="bt709")
    stream = stream.filter("tonemap", tonemap="hable", desat=0)
    sdr = {"tin": "linear", "pin": "bt709", "t": "bt709", "m": "bt709", "r": "tv", "p": "bt709"}
    return stream.filter("zscale", **sdr)


def _known(value: str | None, known: tuple[str, ...], default: str) -> str:
    return value if value in known else default


def _audio_options(audio: Stream) -> dict[str, Any]:
    channels = min(max(audio.channels, 1), 2)
    return {
        "c:a": "aac",
        "profile:a": "aac_low",
        "b:a": f"{64 * channels}k",
        "ar": 48000,
        "ac": channels,
        "flags:a": "+bitexact",
    }


def encode_argv(
    src: str, dst: str, fmt: str, selection: Selection, opts: EncodeOptions, *, zscale: bool
) -> list[str]:
    """Re-encode. Video goes to an intermediate MP4 that finalise_argv copies (to lose the
    encoder name the muxer writes); audio is final at once: nothing names its encoder."""
    inp = _input(src, fmt, opts.threads, max_pixels=str(opts.max_pixels))
    streams: list[Any] = []
    out_opts: dict[str, Any] = {
        "f": "mp4",
        "map_metadata": -1,
        "map_chapters": -1,
        "sn": None,
        "dn": None,
        # Stops work on a file whose header understates its length; the output check refuses.
        "t": f"{opts.max_duration + 2:g}",
        "max_muxing_queue_size": 1024,
        "fflags": "+bitexact",
    }
    if selection.video is not None:
        streams.append(
            _video_filters(inp[str(selection.video.index)], selection.video, opts, zscale)
        )
        out_opts.update(
            {
                "c:v": "libx264",
                "preset": opts.preset,
                "crf": opts.crf,
                "profile:v": "high",
                "level:v": "4.2",
                "maxrate": _MAXRATE,
                "bufsize": _MAXRATE,
                "threads": opts.threads,
                "fps_mode:v": "vfr",  # keep the input's timing; no duplicated frames
                "color_primaries": "bt709",
                "color_trc": "bt709",
                "colorspace": "bt709",
                "color_range": "tv",
                "flags:v": "+bitexact",
                # SEI NAL units: x264 writes its version and every option into one.
                "bsf:v": "filter_units=remove_types=6",
            }
        )
    else:
        out_opts.update(f="ipod", vn=None, movflags="+faststart")
    if selection.audio is not None:
        streams.append(inp[str(selection.audio.index)])
        out_opts.update(_audio_options(selection.audio))
    return _compile(ffmpeg.output(*streams, dst, **out_opts).overwrite_output(), opts.threads)


def _copy_maps(selection: Selection, intermediate: bool) -> list[str]:
    chosen = [s for s in (selection.video, selection.audio) if s is not None]
    if intermediate:  # encode_argv wrote video (if any) then audio, nothing else
        return [str(i) for i in range(len(chosen))]
    return [str(s.index) for s in chosen]


def finalise_argv(
    src: str, dst: str, fmt: str, selection: Selection, threads: int, *, intermediate: bool
) -> list[str]:
    """Stream copy into the final file: no tags, no chapters, moov first. A copy, because the
    encoding run names its encoder in the stsd box whatever -metadata says."""
    inp = _input(src, fmt, threads)
    streams = [inp[m] for m in _copy_maps(selection, intermediate)]
    out = ffmpeg.output(
        *streams,
        dst,
        f="mp4" if selection.kind == "video" else "ipod",  # ipod: an M4A, brand "M4A "
        c="copy",
        map_metadata=-1,
        map_chapters=-1,
        sn=None,
        dn=None,
        fflags="+bitexact",
        movflags="+faststart",
    )
    return _compile(out.overwrite_output(), threads)


def decode_check_argv(src: str, fmt: str, selection: Selection, threads: int) -> list[str]:
    """A full decode that stops at the first error: remuxed input must be flawless."""
    inp = _input(src, fmt, threads)
    streams = [inp[str(s.index)] for s in (selection.video, selection.audio) if s is not None]
    return _compile(ffmpeg.output(*streams, "-", f="null").global_args("-xerror"), threads)


# What our output may say about itself: the container's own brands and per-track defaults.
OUTPUT_FORMAT_TAGS: Final = frozenset({"major_brand", "minor_version", "compatible_brands"})
OUTPUT_STREAM_TAGS: Final = frozenset({"language", "handler_name", "vendor_id"})
# Encoder priming and frame granularity make an output a little longer than its input.
DURATION_SLACK: Final = 1.0


def check_output(
    probe: Probe, selection: Selection, max_duration: float, bounds: OutputBounds
) -> float:
    """Accept our own output only if it keeps the contract of API.md; returns its duration."""
    duration = probe.duration
    if duration is None or duration <= 0:
        raise Refused(EXIT_INVALID_MEDIA, "nothing in the file could be decoded")
    if duration > max_duration + DURATION_SLACK:
        raise Refused(EXIT_TOO_LONG, f"media is {duration:.1f} s long; limit {max_duration:g} s")
    videos = [s for s in probe.streams if s.codec_type == "video"]
    audios = [s for s in probe.streams if s.codec_type == "audio"]
    wanted = (int(selection.kind == "video"), int(selection.audio is not None))
    if (len(videos), len(audios)) != wanted or len(probe.streams) != sum(wanted):
        raise Refused(EXIT_INVALID_MEDIA, "the output lacks a stream of the input")
    problems = [*_video_problems(videos, bounds), *_audio_problems(audios)]
    stream_tags = frozenset().union(*(s.tags for s in probe.streams))
    if not (probe.tags <= OUTPUT_FORMAT_TAGS and stream_tags <= OUTPUT_STREAM_TAGS):
        problems.append("metadata left")
    if problems:
        raise Refused(EXIT_PROCESSING_FAILED, "output breaks the contract: " + ", ".join(problems))
    return duration


def _video_problems(videos: list[Stream], bounds: OutputBounds) -> list[str]:
    problems = []
    for v in videos:
        long, short = max(v.width, v.height), min(v.width, v.height)
        if (v.codec_name, v.profile, v.pix_fmt) != ("h264", "High", "yuv420p"):
            problems.append(f"video is {v.codec_name}/{v.profile}/{v.pix_fmt}")
        if v.level is None or not 0 < v.level <= bounds.max_level:
            problems.append(f"level {v.level}")
        if not (0 < short <= bounds.short_side and long <= bounds.long_side):
            problems.append(f"frame {v.width}x{v.height}")
        if v.fps is not None and v.fps > bounds.max_fps + Fraction(1, 2):
            problems.append(f"{float(v.fps):.1f} fps")
        if v.display_matrix or v.rotation:
            problems.append("rotation left")
    return problems


def _audio_problems(audios: list[Stream]) -> list[str]:
    return [
        f"audio is {a.codec_name}/{a.profile}/{a.channels} ch"
        for a in audios
        if (a.codec_name, a.profile) != ("aac", "LC") or not 0 < a.channels <= 2
    ]
