"""The Dockerfile, read as data (no Docker engine here): stages, user, init, healthcheck."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass

from ephemeral.config import Settings
from tests.deploy.compose import IMAGE_UID, ROOT, resolved_config, setting_env_names
from tests.fixtures.processes import api_processes, free_port


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def instructions() -> list[Instruction]:
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)  # line continuations
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            found.append(Instruction(keyword.upper(), args.strip()))
    return found


def stages() -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for item in instructions():
        if item.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(item)
    return result


def only(stage: list[Instruction], keyword: str) -> Instruction:
    matches = [i for i in stage if i.keyword == keyword]
    assert len(matches) == 1, (keyword, matches)
    return matches[0]


def test_multi_stage_build_and_a_lean_runtime() -> None:
    build, runtime = stages()
    assert only(build, "FROM").args.endswith(" AS build")
    assert only(runtime, "FROM").args == "${PYTHON_IMAGE} AS runtime"
    arg = next(i for i in instructions() if i.keyword == "ARG")
    assert arg.args == "PYTHON_IMAGE=python:3.11-slim-bookworm"
    build_runs = " ".join(i.args for i in build if i.keyword == "RUN")
    assert "pip install -r requirements.lock" in build_runs
    runs = " ".join(i.args for i in runtime if i.keyword == "RUN")
    assert "pip" not in runs  # dependencies arrive only as the venv built in the first stage
    copies = [i.args for i in runtime if i.keyword == "COPY"]
    assert copies == ["--from=build /opt/ephemeral /opt/ephemeral"]
    packages = set(
        re.findall(r"install -y --no-install-recommends ([a-z0-9 -]+?) &&", runs)[0].split()
    )
    assert {"ffmpeg", "tini", "util-linux"} <= packages  # util-linux: setpriv and unshare


def test_runs_as_a_non_root_user_under_tini() -> None:
    runtime = stages()[-1]
    user = only(runtime, "USER").args
    uid = user.split(":")[0]
    assert uid not in ("root", "0") and uid == str(IMAGE_UID)
    runs = " ".join(i.args for i in runtime if i.keyword == "RUN")
    assert f"--uid {uid} " in runs  # a real account, so the home dir and /data belong to it
    # The compose keyring volume (a tmpfs) is handed to that same uid.
    keyring = resolved_config()["volumes"]["keyring"]["driver_opts"]["o"]
    assert f"uid={uid}" in keyring.split(",")
    assert json.loads(only(runtime, "ENTRYPOINT").args) == ["tini", "--"]
    assert json.loads(only(runtime, "CMD").args) == ["ephemeral", "serve"]


def test_image_environment_names_real_settings() -> None:
    env = only(stages()[-1], "ENV").args
    names = set(re.findall(r"\b(EPHEMERAL_[A-Z_]+)=", env))
    assert names and names <= setting_env_names()


def test_build_context_carries_what_the_build_copies_and_no_secrets() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignore = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*"  # deny by default, then allow what the build copies
    allowed = {entry[1:].rstrip("/") for entry in ignore if entry.startswith("!")}
    sources = set()
    for item in instructions():
        if item.keyword == "COPY" and not item.args.startswith("--from"):
            sources |= set(item.args.split()[:-1])
    assert sources == allowed
    assert not {"secrets", "data", ".venv"} & allowed


def healthcheck_argv() -> list[str]:
    check = only(stages()[-1], "HEALTHCHECK").args
    assert re.search(r"--interval=\d+s --timeout=\d+s", check)
    argv: list[str] = json.loads(check[check.index("CMD ") + 4 :])
    assert argv[0] == "python" and "/healthz" in argv[-1]
    return [sys.executable, *argv[1:]]


def test_the_healthcheck_passes_on_a_live_api_and_fails_without_one(settings: Settings) -> None:
    """The HEALTHCHECK command itself, run against a real `ephemeral serve` process."""
    argv = healthcheck_argv()
    with api_processes(settings, 1) as urls:
        port = urls[0].rsplit(":", 1)[1]
        live = subprocess.run(argv, env={"EPHEMERAL_PORT": port}, capture_output=True, timeout=30)
        assert live.returncode == 0, live.stderr
    dead = subprocess.run(
        argv, env={"EPHEMERAL_PORT": str(free_port())}, capture_output=True, timeout=30
    )
    assert dead.returncode != 0 and b"Connection refused" in dead.stderr
