"""The client's small parsers: event streams cut anywhere, links, durations, problems."""

from __future__ import annotations

import argparse
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ephemeral.client import ClientError, Gone, ProblemError, ServerError, parse_link
from ephemeral.client.cli import duration
from ephemeral.client.errors import problem_from
from ephemeral.client.sse import ServerSentEvent, SSEParser

STREAM = (
    b": heartbeat\n\n"
    b'event: snapshot\ndata: {"id": "m_1"}\n\n'
    b'id: 17-0\r\nevent: recipient.opened\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
    b"retry: 1000\n\n"
    b"id: 18-0\nevent: media.purged\ndata:{}\n\n"
)
EXPECTED = [
    ServerSentEvent("snapshot", '{"id": "m_1"}', None),
    ServerSentEvent("recipient.opened", '{"a":\n1}', "17-0"),
    ServerSentEvent("media.purged", "{}", "18-0"),
]


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_events_come_out_whole_however_the_stream_is_cut(cuts: list[int]) -> None:
    parser = SSEParser()
    bounds = [0, *sorted(cuts), len(STREAM)]
    got = [e for a, b in itertools.pairwise(bounds) for e in parser.feed(STREAM[a:b])]
    assert got == EXPECTED


LOOKUP, SECRET = "A" * 22, "b" * 43


def test_links_and_tokens() -> None:
    assert parse_link(f"https://v.example/v/{LOOKUP}#{SECRET}") == (
        "https://v.example",
        f"{LOOKUP}.{SECRET}",
    )
    assert parse_link(f"https://x.example/eph/v/{LOOKUP}#{SECRET}")[0] == "https://x.example/eph"
    assert parse_link(f"{LOOKUP}.{SECRET}", "http://h:1/") == ("http://h:1", f"{LOOKUP}.{SECRET}")
    for bad in (f"https://v.example/v/{LOOKUP}", f"https://v.example/x/{LOOKUP}#{SECRET}", "hi"):
        with pytest.raises(ClientError) as caught:
            parse_link(bad)
        assert SECRET not in str(caught.value)
    with pytest.raises(ClientError, match="server"):
        parse_link(f"{LOOKUP}.{SECRET}")


def test_durations() -> None:
    assert [duration(t) for t in ("3600", "45s", "30m", "12h", "1d", "2w")] == [
        3600,
        45,
        1800,
        43200,
        86400,
        1209600,
    ]
    with pytest.raises(argparse.ArgumentTypeError):
        duration("1 fortnight")


def test_problems_map_to_classes_and_keep_their_fields() -> None:
    body = '{"type": "x/already-viewed", "title": "Gone", "status": 410, "code": "already-viewed",'
    body += ' "detail": "viewed", "instance": "r1", "opened_at": "2026-01-01T00:00:00Z"}'
    gone = problem_from(410, {"Retry-After": "3"}, body)
    assert isinstance(gone, Gone) and gone.code == "already-viewed" and gone.detail == "viewed"
    assert gone.instance == "r1" and gone.retry_after == 3 and gone.body["opened_at"]
    proxy = problem_from(502, {}, "<html>bad gateway</html>")
    assert isinstance(proxy, ServerError) and proxy.code == "http-502"
    odd = problem_from(418, {}, "")
    assert type(odd) is ProblemError and odd.status == 418
