"""The client commands as a user runs them: subprocesses against a real server process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ephemeral.cli import main
from tests.client.conftest import Service, noisy_jpeg


def ephemeral(
    service: Service, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ephemeral", *args],
        env=client_env(service),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def client_env(service: Service) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPHEMERAL_")}
    env.update(EPHEMERAL_SERVER=service.url, EPHEMERAL_TOKEN=service.token())
    return env


def rows(output: str) -> dict[str, dict[str, str]]:
    """Plain output: `#` comments, a header row, then tab-separated rows keyed by the first."""
    lines = [line for line in output.splitlines() if line and not line.startswith("#")]
    header = lines[0].split("\t")
    return {
        line.split("\t")[0]: dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]
    }


def test_send_status_open_status_unsend(service: Service, tmp_path: Path) -> None:
    photo = noisy_jpeg(tmp_path / "photo.jpg", 128)
    sent = ephemeral(
        service,
        "send",
        str(photo),
        "--to",
        "bob,carol,dave",
        "--expires",
        "1d",
        "--caption",
        "hello",
        "--wait",
    )
    assert sent.returncode == 0, sent.stderr
    media_id = sent.stdout.splitlines()[0].split()[1]
    links = rows(sent.stdout)
    assert list(links) == ["bob", "carol", "dave"]
    assert all("/v/" in row["url"] and "#" in row["url"] for row in links.values())

    before = ephemeral(service, "status", media_id)
    assert before.returncode == 0, before.stderr
    table = rows(before.stdout)
    assert [(r, row["status"]) for r, row in table.items()] == [
        ("bob", "sent"),
        ("carol", "sent"),
        ("dave", "sent"),
    ]

    saved = tmp_path / "from-alice.jpg"
    opened = ephemeral(service, "open", links["carol"]["url"], "-o", str(saved), "--json")
    assert opened.returncode == 0, opened.stderr
    shown = json.loads(opened.stdout)
    assert shown["mime"] == "image/jpeg" and shown["size"] == saved.stat().st_size
    assert "lease" not in shown and "view_id" not in shown and "content_url" not in shown
    assert "permanent copy" in opened.stderr and "caption: hello" in opened.stderr
    assert saved.read_bytes()[:3] == b"\xff\xd8\xff" and oct(saved.stat().st_mode)[-3:] == "600"

    after = rows(ephemeral(service, "status", media_id).stdout)
    assert after["carol"]["status"] == "opened" and after["carol"]["opened_at"]
    assert after["bob"]["status"] == "sent" and after["bob"]["opened_at"] == ""

    again = ephemeral(service, "open", links["carol"]["url"], "-o", str(tmp_path / "2.jpg"))
    assert again.returncode == 1 and "already been viewed" in again.stderr

    unsent = ephemeral(service, "unsend", media_id)
    assert unsent.returncode == 0 and unsent.stdout.split() == ["unsent", media_id]
    final = ephemeral(service, "status", media_id, "--json")
    body = json.loads(final.stdout)
    assert body["state"] == "revoked"
    assert {m["id"]: m["status"] for m in body["recipients"]} == {
        "bob": "revoked",
        "carol": "opened",
        "dave": "revoked",
    }
    # The links were printed once, to stdout; never to stderr.
    assert all(row["url"].split("#")[1] not in sent.stderr for row in links.values())


def test_open_refuses_media_sent_with_capture_block(service: Service, tmp_path: Path) -> None:
    photo = noisy_jpeg(tmp_path / "photo.jpg", 64)
    sent = ephemeral(
        service, "send", str(photo), "--to", "bob", "--capture", "block", "--json", "--wait"
    )
    assert sent.returncode == 0, sent.stderr
    created = json.loads(sent.stdout)
    target = tmp_path / "kept.jpg"
    refused = ephemeral(service, "open", created["recipients"][0]["url"], "-o", str(target))
    assert refused.returncode == 3 and "capture: block" in refused.stderr
    assert not target.exists() and list(tmp_path.iterdir()) == [photo]
    # Nothing was consumed: bob can still open it (in an app), and the status says so.
    bob = rows(ephemeral(service, "status", created["id"]).stdout)["bob"]
    assert bob["status"] == "delivered" and bob["views_left"] == "1"


def test_status_watch_follows_the_group_until_purge(service: Service, tmp_path: Path) -> None:
    photo = noisy_jpeg(tmp_path / "photo.jpg", 64)
    sent = ephemeral(service, "send", str(photo), "--to", "bob,carol", "--json", "--wait")
    created = json.loads(sent.stdout)
    watch = subprocess.Popen(
        [sys.executable, "-m", "ephemeral", "status", created["id"], "--watch"],
        env=client_env(service),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stdout is not None
        first = watch.stdout.readline()  # the snapshot's table comes first
        assert first.startswith(f"# {created['id']} ready")
        for link in created["recipients"]:
            out = tmp_path / f"{link['id']}.jpg"
            assert ephemeral(service, "open", link["url"], "-o", str(out)).returncode == 0
        output, errors = watch.communicate(timeout=60)  # it ends by itself at the purge
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
    assert watch.returncode == 0, errors
    events = [line.split("\t") for line in output.splitlines() if line.count("\t") == 4]
    seen = [(e[1], e[2]) for e in events if e[1].startswith("recipient.")]
    assert seen == [
        ("recipient.delivered", "bob"),
        ("recipient.opened", "bob"),
        ("recipient.delivered", "carol"),
        ("recipient.opened", "carol"),
    ]
    # It stopped by itself once the status said purged (with or without media.purged shown).
    assert {e[1] for e in events} <= {"media.ready", "media.purged", *(s[0] for s in seen)}


def test_usage_mistakes_are_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("EPHEMERAL_TOKEN", raising=False)
    photo = noisy_jpeg(tmp_path / "p.jpg", 32)
    assert main(["send", str(photo), "--to", "bob"]) == 2
    assert "EPHEMERAL_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("EPHEMERAL_TOKEN", "x")
    assert main(["send", str(tmp_path / "missing.jpg"), "--to", "bob"]) == 2
    assert "no such file" in capsys.readouterr().err
    existing = tmp_path / "there.jpg"
    existing.write_bytes(b"mine")
    link = f"http://127.0.0.1:9/v/{'A' * 22}#{'b' * 43}"
    assert main(["open", link, "-o", str(existing)]) == 3  # refused before any request
    assert "exists" in capsys.readouterr().err and existing.read_bytes() == b"mine"
    assert main(["open", "https://example.com/nothing", "-o", str(tmp_path / "x")]) == 1
    assert "not an ephemeral link" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["send", str(photo), "--to", "bob", "--expires", "soon"])


def test_status_lists_every_member_of_a_big_group(service: Service, tmp_path: Path) -> None:
    group = ",".join(f"m{n:03d}" for n in range(130))
    photo = noisy_jpeg(tmp_path / "p.jpg", 32)
    sent = ephemeral(service, "send", str(photo), "--to", group, "--json", "--wait")
    assert sent.returncode == 0, sent.stderr
    media_id = json.loads(sent.stdout)["id"]
    table = rows(ephemeral(service, "status", media_id).stdout)
    assert len(table) == 130 and {row["status"] for row in table.values()} == {"sent"}
