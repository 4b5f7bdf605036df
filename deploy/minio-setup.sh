#!/bin/sh
# One-shot MinIO setup for docker-compose.yml, run by the minio/mc image; safe to rerun.
#  1. the bucket, with versioning left off (a delete is final; see storage/s3_ops.py);
#  2. its lifecycle rules (s3-lifecycle.json) as a backstop purge: the service deletes every
#     object itself, this only catches what a bug or a lost purge would leave behind;
#  3. an S3 user for the service that can reach this bucket and nothing else.
set -eu
secrets=${SECRETS_DIR:-/run/secrets}
setup=${SETUP_DIR:-/setup}
secret() { tr -d '\r\n' <"$secrets/$1"; }
bucket=${BUCKET:-ephemeral}
access_key=$(secret s3_access_key)

mc alias set local http://minio:9000 "$(secret minio_root_user)" "$(secret minio_root_password)" >/dev/null
mc mb --ignore-existing "local/$bucket"
# Import replaces the whole lifecycle configuration, so a rerun converges instead of piling up.
mc ilm rule import "local/$bucket" <"$setup/s3-lifecycle.json"
mc ilm rule ls "local/$bucket"

policy=$(mktemp)
cat >"$policy" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketLocation",
        "s3:GetBucketVersioning", "s3:GetLifecycleConfiguration",
        "s3:GetBucketObjectLockConfiguration", "s3:ListBucketMultipartUploads"
      ],
      "Resource": ["arn:aws:s3:::$bucket"]
    },
    {
      "Effect": "Allow",
      "Action": [
        "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion",
        "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"
      ],
      "Resource": ["arn:aws:s3:::$bucket/*"]
    }
  ]
}
JSON
mc admin user add local "$access_key" "$(secret s3_secret_key)"
mc admin policy create local ephemeral-service "$policy"
# Attaching a policy the user already has is an error on a rerun; then confirm it is there.
# (Shell only: the mc image is ubi-micro, with coreutils but no grep or sed.)
if ! mc admin policy attach local ephemeral-service --user "$access_key" 2>/dev/null; then
  case "$(mc admin user info local "$access_key")" in
    *ephemeral-service*) ;;
    *) echo "minio-setup: cannot attach policy ephemeral-service to $access_key" >&2; exit 1 ;;
  esac
fi
echo "minio-setup: bucket $bucket ready for $access_key"
