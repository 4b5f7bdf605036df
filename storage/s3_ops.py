"""Blocking S3 operations run on the S3 store's pool: multipart upload, delete, bucket vetting."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from storage.base import StorageError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, LifecycleRuleOutputTypeDef

MAX_PARTS = 10_000


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class MultipartUpload:
    """One multipart upload, created with its first part; the caller runs one step at a time."""

    def __init__(self, client: S3Client, bucket: str, name: str) -> None:
        self._client, self._bucket, self._name = client, bucket, name
        self._id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._done = False

    def send(self, body: bytes) -> None:
        if self._id is None:
            created = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._name)
            self._id = created["UploadId"]
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise StorageError(f"{self._name!r} exceeds {MAX_PARTS} parts; raise part_size")
        etag = self._client.upload_part(
            Bucket=self._bucket, Key=self._name, UploadId=self._id, PartNumber=number, Body=body
        )["ETag"]
        self._parts.append({"PartNumber": number, "ETag": etag})

    def finish(self, last: bytes) -> None:
        self.send(last)
        assert self._id is not None
        self._client.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._name,
            UploadId=self._id,
            MultipartUpload={"Parts": self._parts},
        )
        self._done = True

    def abort(self) -> None:
        """Call once no step is in flight: AWS may keep a part whose upload overlaps the abort."""
        if self._id is None or self._done:
            return
        try:
            self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._name, UploadId=self._id
            )
        except ClientError as exc:
            if error_code(exc) != "NoSuchUpload":  # a completion we did not hear about
                raise


def delete_object(client: S3Client, bucket: str, name: str) -> None:
    """Delete `name` for good: on a versioned bucket, every version and delete marker."""
    if client.get_bucket_versioning(Bucket=bucket).get("Status") not in ("Enabled", "Suspended"):
        client.delete_object(Bucket=bucket, Key=name)
        return
    # A plain delete would only add a delete marker. Only an empty listing confirms the purge.
    for _ in range(3):
        versions = _versions(client, bucket, name)
        if not versions:
            return
        for version in versions:
            client.delete_object(Bucket=bucket, Key=name, VersionId=version)
    raise StorageError(f"versions of {name!r} keep reappearing")


def _versions(client: S3Client, bucket: str, name: str) -> list[str]:
    found: list[str] = []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=name):
        for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            if entry.get("Key") == name:  # the prefix also matches "name/..." and "nameX"
                found.append(entry["VersionId"])
    return found


def bucket_problems(client: S3Client, bucket: str, prefix: str) -> list[str]:
    """List the reasons a deleted object could survive in the bucket; empty means safe."""
    client.head_bucket(Bucket=bucket)
    problems: list[str] = []
    if client.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled":
        try:
            rules = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
            expiring = any(_expires_noncurrent(rule, prefix) for rule in rules)
        except ClientError as exc:
            if error_code(exc) != "NoSuchLifecycleConfiguration":
                problems.append(f"cannot read its lifecycle rules ({error_code(exc)})")
            expiring = False
        if not expiring:
            problems.append(
                "versioning is enabled without a lifecycle rule with NoncurrentVersionExpiration"
                f" covering prefix {prefix!r}"
            )
    try:
        lock = client.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
        if lock.get("ObjectLockEnabled") == "Enabled":
            problems.append("Object Lock is enabled, so objects may be undeletable")
    except ClientError as exc:
        if error_code(exc) != "ObjectLockConfigurationNotFoundError":
            problems.append(f"cannot read its Object Lock configuration ({error_code(exc)})")
    return problems


def _expires_noncurrent(rule: LifecycleRuleOutputTypeDef, prefix: str) -> bool:
    """Whether the rule expires noncurrent versions of every object under `prefix`."""
    if rule.get("Status") != "Enabled" or "NoncurrentVersionExpiration" not in rule:
        return False
    scope = rule.get("Filter", {"Prefix": rule.get("Prefix", "")})
    if set(scope) - {"Prefix"}:  # tag and size filters leave some objects uncovered
        return False
    return prefix.startswith(scope.get("Prefix", ""))
