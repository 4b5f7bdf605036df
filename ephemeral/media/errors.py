"""Why an upload was refused, as the media.failed codes of API.md, shared by photo and video."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Mapping
from typing import Any, Final, Literal, NoReturn

RejectCode = Literal[
    "invalid-media", "too-long", "too-many-pixels", "no-media-stream", "processing-failed"
]

# Exit codes of the boxed parser children (photo_child, later video). Any other exit status,
# a signal or a timeout means processing-failed: the input may be fine and the box was not.
EXIT_INVALID_MEDIA: Final = 10
EXIT_TOO_MANY_PIXELS: Final = 11
EXIT_TOO_LONG: Final = 12
EXIT_NO_MEDIA_STREAM: Final = 13
EXIT_PROCESSING_FAILED: Final = 14

EXIT_CODES: Final[dict[int, RejectCode]] = {
    EXIT_INVALID_MEDIA: "invalid-media",
    EXIT_TOO_MANY_PIXELS: "too-many-pixels",
    EXIT_TOO_LONG: "too-long",
    EXIT_NO_MEDIA_STREAM: "no-media-stream",
    EXIT_PROCESSING_FAILED: "processing-failed",
}


class MediaRejected(Exception):
    """The upload cannot become ready; `code` goes into the media.failed event as is."""

    def __init__(self, code: RejectCode, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code: RejectCode = code
        self.detail = detail


DETAIL_MAX = 200  # a refusal's words end up in the sender's status: keep them short


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def refuse(exit_code: int, detail: str) -> NoReturn:
    """In a boxed child: leave with the code, and the words as the last line of stderr."""
    line = json.dumps({"code": EXIT_CODES[exit_code], "detail": detail})
    sys.stderr.write("\n" + line + "\n")
    sys.stderr.flush()
    sys.exit(exit_code)


def rejection(
    returncode: int, stderr: bytes, defaults: Mapping[RejectCode, str], what: str
) -> MediaRejected:
    """In the parent: the exit code decides; the child's last stderr line only adds the words."""
    code = EXIT_CODES.get(returncode)
    if code is None or code not in defaults:
        if returncode < 0:
            return MediaRejected(
                "processing-failed", f"{what} was killed ({signal_name(-returncode)})"
            )
        return MediaRejected("processing-failed", f"{what} failed ({returncode})")
    detail = defaults[code]
    lines = stderr.strip().splitlines()
    try:
        said: Any = json.loads(lines[-1]) if lines else None
    except ValueError:
        said = None
    if isinstance(said, dict) and said.get("code") == code and isinstance(said.get("detail"), str):
        detail = said["detail"][:DETAIL_MAX]
    return MediaRejected(code, detail)
