#!/bin/sh
# Creates the secrets docker-compose.yml reads, with fresh random values: run it once, before
# the first `docker-compose up`. It never overwrites: to rotate, see docs/operations.md.
#
#   scripts/compose_secrets.sh [DIR]     (default: ./secrets, which .gitignore keeps out of git)
#
# Compose without swarm bind-mounts each secret file with its host permissions, and the services
# run as different users (ephemeral as uid 10001, redis as its own user), so the files are 0444
# inside a 0700 directory: readable in the containers, closed to other users of the host.
set -eu
dir=${1:-secrets}

if [ -e "$dir/ephemeral.toml" ]; then
  echo "compose_secrets: $dir/ephemeral.toml exists; nothing changed (rotation: docs/operations.md)" >&2
  exit 1
fi

# Letters and digits only: the values go into a Redis URL, an ACL file and TOML unescaped.
random() { LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c "$1"; }

umask 077
mkdir -p "$dir"
chmod 0700 "$dir"

minio_user="admin-$(random 12)"
minio_password=$(random 40)
s3_access_key="ephemeral-$(random 12)"
s3_secret_key=$(random 40)
redis_password=$(random 40)
jwt_key=$(random 48) # HS256 needs at least 32 bytes
# In the TOML rather than a generated file in the keyring: the keyring is a tmpfs that a host
# reboot empties, and a lost pepper makes every stored Idempotency-Key answer unreachable.
pepper=$(random 48)

write() { # write NAME CONTENT: a new 0444 file in $dir
  printf '%s\n' "$2" >"$dir/$1"
  chmod 0444 "$dir/$1"
}

write minio_root_user "$minio_user"
write minio_root_password "$minio_password"
write s3_access_key "$s3_access_key"
write s3_secret_key "$s3_secret_key"
# `default` may only PING (the healthcheck); `ephemeral` reaches only the service's keys (the
# redis.prefix `eph` and arq's job keys) and no admin or dangerous command beyond the two the
# start-up checks need: CONFIG GET (the durability check) and INFO (the Redis version).
write redis_users.acl "user default on nopass resetkeys resetchannels -@all +ping
user ephemeral on >$redis_password resetkeys ~eph:* ~arq:* resetchannels +@all -@admin -@dangerous +config|get +info"
# Everything secret the API and the worker need; the rest of their settings are plain
# environment variables in docker-compose.yml (the environment overrides this file).
write ephemeral.toml "# Secrets for docker-compose.yml, made by scripts/compose_secrets.sh.
[redis]
url = \"redis://ephemeral:$redis_password@redis:6379/0\"

[storage]
s3_access_key = \"$s3_access_key\"
s3_secret_key = \"$s3_secret_key\"

[auth]
jwt_key = \"$jwt_key\"

[idempotency]
pepper = \"$pepper\""
echo "compose_secrets: wrote $dir/{ephemeral.toml,redis_users.acl,minio_root_user,minio_root_password,s3_access_key,s3_secret_key}" >&2
