"""deploy/minio-setup.sh, run by sh with a recording `mc` (no MinIO here): what it asks
MinIO to do, and whether the policy it writes grants every S3 call the store makes."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy.compose import ROOT, make_secrets, service

SCRIPT = ROOT / "deploy" / "minio-setup.sh"

# The IAM action each boto3 call of storage/ needs; None: no request of its own.
S3_ACTIONS: dict[str, tuple[str, ...] | None] = {
    "head_bucket": ("s3:ListBucket",),
    "get_bucket_versioning": ("s3:GetBucketVersioning",),
    "get_bucket_lifecycle_configuration": ("s3:GetLifecycleConfiguration",),
    "get_object_lock_configuration": ("s3:GetBucketObjectLockConfiguration",),
    "list_object_versions": ("s3:ListBucketVersions",),
    "put_object": ("s3:PutObject",),
    "create_multipart_upload": ("s3:PutObject",),
    "upload_part": ("s3:PutObject",),
    "complete_multipart_upload": ("s3:PutObject",),
    "abort_multipart_upload": ("s3:AbortMultipartUpload",),
    "get_object": ("s3:GetObject",),
    "head_object": ("s3:GetObject",),
    "delete_object": ("s3:DeleteObject", "s3:DeleteObjectVersion"),  # by VersionId if versioned
    "get_paginator": None,  # the paginated operation is named in its argument
    "close": None,
}
BUCKET_LEVEL = {
    "s3:ListBucket",
    "s3:GetBucketVersioning",
    "s3:GetLifecycleConfiguration",
    "s3:GetBucketObjectLockConfiguration",
    "s3:ListBucketVersions",
}

FAKE_MC = """#!/bin/sh
# Records each call; keeps what MinIO would have been given.
printf '%s\\n' "$*" >>"$MC_LOG"
case "$1 $2 $3" in
  "ilm rule import") cat >"$MC_OUT/lifecycle.json" ;;
  "admin policy create") cp "$6" "$MC_OUT/policy.json" ;;
  "admin policy attach") [ "$MC_ATTACHED" = no ]; exit ;;  # fails when already attached
  "admin user info") [ "$MC_ATTACHED" = yes ] && echo "PolicyName: ephemeral-service" ;;
esac
exit 0
"""


def storage_calls() -> set[str]:
    """The boto3 client methods storage/ calls, and the operations it paginates."""
    source = "".join(path.read_text() for path in (ROOT / "storage").glob("s3*.py"))
    calls = set(re.findall(r"\bclient\.([a-z_]+)\(", source))
    return calls | set(re.findall(r'get_paginator\("([a-z_]+)"\)', source))


def run_setup(tmp_path: Path, attached: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    secrets = tmp_path / "secrets"
    if not secrets.exists():
        assert make_secrets(secrets).returncode == 0
    bin_dir, out = tmp_path / "bin", tmp_path / "out"
    bin_dir.mkdir(exist_ok=True)
    out.mkdir(exist_ok=True)
    (bin_dir / "mc").write_text(FAKE_MC)
    (bin_dir / "mc").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "SECRETS_DIR": str(secrets),
        "SETUP_DIR": str(ROOT / "deploy"),
        "MC_LOG": str(out / "calls.log"),
        "MC_OUT": str(out),
        "MC_ATTACHED": attached,
        **service("minio-setup")["environment"],
    }
    result = subprocess.run(
        ["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30
    )
    return result, out


def test_setup_makes_the_bucket_rules_and_a_scoped_user(tmp_path: Path) -> None:
    result, out = run_setup(tmp_path, attached="no")
    assert result.returncode == 0, result.stderr
    calls = (out / "calls.log").read_text().splitlines()
    secrets = tmp_path / "secrets"
    access = (secrets / "s3_access_key").read_text().strip()
    secret = (secrets / "s3_secret_key").read_text().strip()
    root = (secrets / "minio_root_user").read_text().strip()
    assert calls[0].startswith(f"alias set local http://minio:9000 {root} ")
    assert "mb --ignore-existing local/ephemeral" in calls
    assert f"admin user add local {access} {secret}" in calls
    assert f"admin policy attach local ephemeral-service --user {access}" in calls
    lifecycle = json.loads((out / "lifecycle.json").read_text())
    assert lifecycle == json.loads((ROOT / "deploy" / "s3-lifecycle.json").read_text())
    assert service("minio-setup")["volumes"] == [f"{ROOT / 'deploy'}:/setup:ro"]


def test_the_policy_grants_every_call_the_store_makes_and_only_on_its_bucket(
    tmp_path: Path,
) -> None:
    result, out = run_setup(tmp_path, attached="no")
    assert result.returncode == 0, result.stderr
    policy = json.loads((out / "policy.json").read_text())
    granted: dict[str, set[str]] = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in statement["Action"]:
            granted.setdefault(action, set()).update(statement["Resource"])
    unknown = storage_calls() - set(S3_ACTIONS)
    assert not unknown, f"storage/ makes S3 calls this test does not map to IAM actions: {unknown}"
    for call in storage_calls():
        for action in S3_ACTIONS[call] or ():
            want = "arn:aws:s3:::ephemeral" + ("" if action in BUCKET_LEVEL else "/*")
            assert want in granted.get(action, set()), (call, action)
    everything = set().union(*granted.values())
    assert everything == {"arn:aws:s3:::ephemeral", "arn:aws:s3:::ephemeral/*"}


@pytest.mark.parametrize(("attached", "status"), [("yes", 0), ("neither", 1)])
def test_a_rerun_accepts_a_policy_already_attached(
    tmp_path: Path, attached: str, status: int
) -> None:
    result, _ = run_setup(tmp_path, attached=attached)
    assert result.returncode == status, result.stderr
    assert os.path.exists(tmp_path / "out" / "policy.json")
