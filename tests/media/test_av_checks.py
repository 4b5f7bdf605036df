"""The output contract checks: what a normalised file must be before it is accepted."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from ephemeral.media.av_args import (
    OutputBounds,
    check_output,
)
from ephemeral.media.probe import (
    Probe,
    Refused,
    Selection,
    Stream,
)

H264 = Stream(0, "video", "h264", "High", 40, "yuv420p", 1920, 1080, fps=Fraction(30))
AAC = Stream(1, "audio", "aac", "LC", channels=2, sample_rate=48000)
CLIP = Selection("video", H264, AAC, 10.0)
VOICE = Selection("audio", None, Stream(0, "audio", "opus", channels=1), 5.0)
BOUNDS = OutputBounds()


def out_probe(
    *streams: Stream, duration: float = 10.0, tags: frozenset[str] = frozenset()
) -> Probe:
    return Probe("mov,mp4", duration, streams, tags)


GOOD_V = Stream(0, "video", "h264", "High", 40, "yuv420p", 1080, 1920, fps=Fraction(30))
GOOD_A = Stream(1, "audio", "aac", "LC", channels=2)


def test_check_output_accepts_the_contract() -> None:
    assert check_output(out_probe(GOOD_V, GOOD_A), CLIP, 60, BOUNDS) == 10.0
    assert check_output(out_probe(GOOD_A), VOICE, 60, BOUNDS) == 10.0


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"profile": "Main"}, 14),
        ({"codec_name": "hevc"}, 14),
        ({"pix_fmt": "yuv420p10le"}, 14),
        ({"level": 51}, 14),
        ({"width": 1082}, 14),
        ({"height": 1922}, 14),
        ({"fps": Fraction(120)}, 14),
        ({"display_matrix": True}, 14),
        ({"rotation": 90.0}, 14),
        ({"tags": frozenset({"location"})}, 14),
    ],
)
def test_check_output_refuses_breaches(change: dict[str, Any], code: int) -> None:
    bad = Stream(**{**GOOD_V.__dict__, **change})
    with pytest.raises(Refused) as caught:
        check_output(out_probe(bad, GOOD_A), CLIP, 60, BOUNDS)
    assert caught.value.exit_code == code


def test_check_output_streams_duration_and_tags() -> None:
    def code(probe: Probe, selection: Selection = CLIP) -> int:
        with pytest.raises(Refused) as caught:
            check_output(probe, selection, 60, BOUNDS)
        return caught.value.exit_code

    assert code(out_probe(GOOD_V, GOOD_A, duration=75)) == 12  # the header lied
    assert code(out_probe(GOOD_V, GOOD_A, duration=0)) == 10
    assert code(out_probe(GOOD_V)) == 10  # audio went missing
    assert code(out_probe(GOOD_V, GOOD_A, Stream(2, "subtitle"))) == 10
    assert code(out_probe(GOOD_V, Stream(1, "audio", "mp3", channels=2))) == 14
    assert code(out_probe(GOOD_V, Stream(1, "audio", "aac", "HE-AAC", channels=2))) == 14
    assert code(out_probe(GOOD_V, GOOD_A, tags=frozenset({"encoder"}))) == 14
    assert code(out_probe(GOOD_V, GOOD_A), VOICE) == 10  # a voice note with a picture
