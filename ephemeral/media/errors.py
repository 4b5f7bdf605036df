"""Why an upload was refused, as the media.failed codes of API.md, shared by photo and video."""

from __future__ import annotations

from typing import Final, Literal

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
