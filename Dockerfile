# ephemeral: one image for `ephemeral serve` (the API), `ephemeral worker`, and the embedded
# default (`serve` alone starts a private redis-server, keeps blobs under /data and runs a
# worker in process). docker-compose.yml runs the production shape; docs/operations.md explains it.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: the locked dependencies, then the package, into a venv copied whole below ---------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/ephemeral
WORKDIR /src
# The lock first, alone: the dependency layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN /opt/ephemeral/bin/pip install -r requirements.lock
COPY pyproject.toml README.md ./
COPY ephemeral ./ephemeral
COPY storage ./storage
COPY workers ./workers
RUN /opt/ephemeral/bin/pip install --no-deps . \
 && /opt/ephemeral/bin/python -c "import ephemeral.cli, storage.s3, workers.runtime"

# -- runtime: the same Python base (the venv's interpreter links to it), no build tools -------
FROM ${PYTHON_IMAGE} AS runtime
# ffmpeg/ffprobe: the video and voice pipeline. util-linux: setpriv (a parser dies with its
# worker) and unshare (the boxed mode when run as root). tini: PID 1 reaps the parser children
# and forwards SIGTERM, so a stop drains instead of waiting for SIGKILL. redis-server: only the
# embedded default uses it; the compose services point at an external Redis.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg redis-server tini util-linux \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 ephemeral \
 && useradd --system --uid 10001 --gid ephemeral --home-dir /home/ephemeral --create-home \
      --shell /usr/sbin/nologin ephemeral \
 && install -d -o ephemeral -g ephemeral -m 0700 /data /run/ephemeral /run/ephemeral/keyring
COPY --from=build /opt/ephemeral /opt/ephemeral

# The keyring (epoch KEKs) lives outside /data, so a copy or backup of the data volume never
# carries the keys; compose mounts a shared tmpfs volume here.
ENV PATH=/opt/ephemeral/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    EPHEMERAL_DATA_DIR=/data \
    EPHEMERAL_KEYRING_DIR=/run/ephemeral/keyring \
    EPHEMERAL_HOST=0.0.0.0 \
    EPHEMERAL_PORT=8080

# Non-root: the media box then runs its parsers in the /dev/shm fallback (see ARCHITECTURE.md).
USER 10001:10001
WORKDIR /home/ephemeral
EXPOSE 8080
VOLUME ["/data"]

# Liveness of the API process; no curl in the image, Python's urllib is enough.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % (os.environ.get('EPHEMERAL_OPS_PORT') or os.environ.get('EPHEMERAL_PORT', '8080')), timeout=4).close()"]

ENTRYPOINT ["tini", "--"]
CMD ["ephemeral", "serve"]
