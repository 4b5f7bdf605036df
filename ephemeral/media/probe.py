"""ffprobe argv and the checked reading of its JSON: pure functions, run inside the av box."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final, Literal

from ephemeral.media.errors import (
    EXIT_INVALID_MEDIA,
    EXIT_NO_MEDIA_STREAM,
    EXIT_TOO_LONG,
    EXIT_TOO_MANY_PIXELS,
)

AvKind = Literal["video", "audio"]

# Sniffed.format -> the demuxer ffprobe and ffmpeg are forced to use: never a guess from content.
DEMUXERS: Final[dict[str, str]] = dict(mp4="mov", mov="mov", m4a="mov", matroska="matroska")
DEMUXERS.update(ogg="ogg", mp3="mp3", wav="wav", aac="aac")
VIDEO_CONTAINERS: Final = frozenset({"mp4", "mov", "matroska"})  # the others are voice only
# Demuxer names as libavformat spells them; hls, concat, image2, subfile... are all left out.
FORMAT_WHITELIST: Final = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,ogg,mp3,wav,aac"
PROTOCOL_WHITELIST: Final = "file,pipe"
# Decoders of what phones and browsers record; the rest of libavcodec stays unreachable.
CODEC_WHITELIST: Final = (
    "h264,hevc,vp8,vp9,av1,libdav1d,mpeg4,h263,"
    "aac,aac_fixed,opus,libopus,vorbis,mp3float,mp3,flac,alac,amrnb,amrwb,ac3,eac3,"
    "pcm_s16le,pcm_s16be,pcm_s24le,pcm_s32le,pcm_f32le,pcm_u8,pcm_alaw,pcm_mulaw"
)
# ffprobe opens a decoder for every stream, even those the output leaves out: cover art and
# text subtitles too, else a voice memo with a cover or a clip with captions fails to probe.
PROBE_CODEC_WHITELIST: Final = (
    CODEC_WHITELIST + ",mjpeg,png,rawvideo,mov_text,subrip,webvtt,ass,ssa,text"
)
PROBE_SIZE: Final = 16 << 20  # bytes read to find the streams
ANALYZE_DURATION: Final = 15_000_000  # microseconds of media looked at for the same
MAX_STREAMS: Final = 32
HDR_TRANSFERS: Final = frozenset({"smpte2084", "arib-std-b67"})
_ENTRIES = (
    "format=format_name,duration:stream=index,codec_type,codec_name,profile,level,pix_fmt,"
    "width,height,sample_aspect_ratio,avg_frame_rate,channels,sample_rate,color_transfer,"
    "color_primaries,color_space,color_range,duration:stream_disposition=attached_pic:"
    "stream_side_data=side_data_type,rotation"
)


class Refused(Exception):
    """The box refuses the input (or its own output) with an errors.EXIT_* code."""

    def __init__(self, exit_code: int, detail: str) -> None:
        super().__init__(detail)
        self.exit_code = exit_code
        self.detail = detail


def input_options(fmt: str, codecs: str = CODEC_WHITELIST) -> dict[str, str]:
    """What every ffprobe and ffmpeg input gets: the forced demuxer, whitelists, probe bounds."""
    demuxer = DEMUXERS.get(fmt)
    if demuxer is None:
        raise Refused(EXIT_INVALID_MEDIA, f"unsupported container {fmt!r}")
    opts = {
        "f": demuxer,
        "format_whitelist": FORMAT_WHITELIST,
        "protocol_whitelist": PROTOCOL_WHITELIST,
        "codec_whitelist": codecs,
        "probesize": str(PROBE_SIZE),
        "analyzeduration": str(ANALYZE_DURATION),
    }
    if demuxer == "mov":
        opts["enable_drefs"] = "0"  # the default; said out loud: no external data references
    return opts


def probe_argv(path: str, fmt: str, *, full: bool = False) -> list[str]:
    """ffprobe as argv. `full` shows tags too (our output); inputs get only the fields we
    read, so a megabyte of hostile metadata never reaches the JSON parser."""
    argv = ["ffprobe", "-hide_banner", "-v", "error", "-print_format", "json"]
    argv += ["-show_format", "-show_streams"] if full else ["-show_entries", _ENTRIES]
    for key, value in input_options(fmt, PROBE_CODEC_WHITELIST).items():
        argv += [f"-{key}", value]
    return [*argv, "-i", path]


@dataclass(frozen=True)
class Stream:
    index: int
    codec_type: str
    codec_name: str | None = None
    profile: str | None = None
    level: int | None = None
    pix_fmt: str | None = None
    width: int = 0
    height: int = 0
    sar: Fraction = Fraction(1)
    fps: Fraction | None = None  # average frame rate
    channels: int = 0
    sample_rate: int = 0
    color_transfer: str | None = None
    color_primaries: str | None = None
    color_space: str | None = None
    color_range: str | None = None
    rotation: float = 0.0
    display_matrix: bool = False
    attached_pic: bool = False
    duration: float | None = None
    tags: frozenset[str] = frozenset()

    @property
    def hdr(self) -> bool:
        return self.color_transfer in HDR_TRANSFERS or self.color_primaries == "bt2020"


@dataclass(frozen=True)
class Probe:
    format_name: str
    duration: float | None
    streams: tuple[Stream, ...]
    tags: frozenset[str] = frozenset()

    @property
    def video(self) -> Stream | None:
        """The first real video stream: cover art (an attached picture) is not one."""
        found = [s for s in self.streams if s.codec_type == "video" and not s.attached_pic]
        return found[0] if found else None

    @property
    def audio(self) -> Stream | None:
        found = [s for s in self.streams if s.codec_type == "audio"]
        return found[0] if found else None


def parse_probe(raw: bytes) -> Probe:
    """ffprobe's JSON as typed values; anything malformed is invalid-media."""
    try:
        doc: Any = json.loads(raw)
    except ValueError as exc:
        raise Refused(EXIT_INVALID_MEDIA, "the file could not be read as media") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("format"), dict):
        raise Refused(EXIT_INVALID_MEDIA, "the file could not be read as media")
    fmt, raw_streams = doc["format"], doc.get("streams", [])
    if not isinstance(raw_streams, list) or len(raw_streams) > MAX_STREAMS:
        raise Refused(EXIT_INVALID_MEDIA, "too many streams")
    streams = tuple(_stream(s) for s in raw_streams if isinstance(s, dict))
    duration = _seconds(fmt.get("duration"))
    if duration is None:  # some containers only know it per stream
        duration = max((s.duration for s in streams if s.duration is not None), default=None)
    return Probe(_text(fmt.get("format_name")) or "", duration, streams, _tag_keys(fmt))


def _stream(raw: dict[str, Any]) -> Stream:
    side = raw.get("side_data_list")
    matrices = [
        d
        for d in (side if isinstance(side, list) else [])
        if isinstance(d, dict) and (d.get("side_data_type") == "Display Matrix" or "rotation" in d)
    ]
    rotation = _number(matrices[0].get("rotation")) if matrices else None
    disposition = raw.get("disposition")
    return Stream(
        index=_int(raw.get("index")),
        codec_type=_text(raw.get("codec_type")) or "",
        codec_name=_text(raw.get("codec_name")),
        profile=_text(raw.get("profile")),
        level=_int(raw.get("level")) if "level" in raw else None,
        pix_fmt=_text(raw.get("pix_fmt")),
        width=_int(raw.get("width")),
        height=_int(raw.get("height")),
        sar=_ratio(raw.get("sample_aspect_ratio")) or Fraction(1),
        fps=_ratio(raw.get("avg_frame_rate")),
        channels=_int(raw.get("channels")),
        sample_rate=_int(raw.get("sample_rate")),
        color_transfer=_text(raw.get("color_transfer")),
        color_primaries=_text(raw.get("color_primaries")),
        color_space=_text(raw.get("color_space")),
        color_range=_text(raw.get("color_range")),
        rotation=rotation or 0.0,
        display_matrix=bool(matrices),
        attached_pic=isinstance(disposition, dict) and disposition.get("attached_pic") == 1,
        duration=_seconds(raw.get("duration")),
        tags=_tag_keys(raw),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value not in ("", "unknown", "N/A") else None


def _number(value: Any) -> float | None:
    try:
        number = float(value) if isinstance(value, int | float | str) else math.nan
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _int(value: Any) -> int:
    number = _number(value)
    return int(number) if number is not None and number.is_integer() else 0


def _seconds(value: Any) -> float | None:
    number = _number(value)
    return number if number is not None and number >= 0 else None


def _ratio(value: Any) -> Fraction | None:
    """A frame rate or aspect ratio ("30000/1001", "16:9"); None for "0/0", "N/A" and nonsense."""
    if not isinstance(value, str):
        return None
    num, sep, den = value.replace(":", "/").partition("/")
    if not sep or not (num.isdigit() and den.isdigit()) or int(num) == 0 or int(den) == 0:
        return None
    return Fraction(int(num), int(den))


def _tag_keys(raw: dict[str, Any]) -> frozenset[str]:
    tags = raw.get("tags")
    return frozenset(str(k) for k in tags) if isinstance(tags, dict) else frozenset()


@dataclass(frozen=True)
class Selection:
    """What the input is made of, once checked: the streams that go into the output."""

    kind: AvKind
    video: Stream | None
    audio: Stream | None
    duration: float | None


def check_input(
    probe: Probe, fmt: str, max_duration: float, max_width: int, max_height: int
) -> Selection:
    """Refuse with a contract code, or say which streams make the output and what kind it is.

    Only the containers that may carry video make a video; an MP3's cover art or a video
    track in an Ogg file is ignored, as an audio-only WebM or MP4 is a voice note.
    """
    video = probe.video if fmt in VIDEO_CONTAINERS else None
    audio = probe.audio
    if video is None and audio is None:
        raise Refused(EXIT_NO_MEDIA_STREAM, "no audio or video stream")
    if video is not None:
        if video.width <= 0 or video.height <= 0:
            raise Refused(EXIT_INVALID_MEDIA, "the video stream has no frame size")
        long, short = max(video.width, video.height), min(video.width, video.height)
        if long > max(max_width, max_height) or short > min(max_width, max_height):
            limit = f"{max_width}x{max_height}"
            raise Refused(
                EXIT_TOO_MANY_PIXELS, f"video frame is {video.width}x{video.height}; limit {limit}"
            )
    if probe.duration is not None and probe.duration > max_duration:
        raise Refused(
            EXIT_TOO_LONG, f"media is {probe.duration:.1f} s long; limit {max_duration:g} s"
        )
    return Selection("video" if video else "audio", video, audio, probe.duration)
