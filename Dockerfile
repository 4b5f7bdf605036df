# ephemeral: the API with the embedded Redis and an in-process worker by default.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg redis-server util-linux \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /home/ephemeral --uid 10001 ephemeral \
 && mkdir -p /data && chown ephemeral /data

WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
COPY ephemeral ./ephemeral
COPY storage ./storage
COPY workers ./workers
RUN pip install --no-cache-dir -r requirements.lock \
 && pip install --no-cache-dir --no-deps .

USER ephemeral
ENV EPHEMERAL_DATA_DIR=/data EPHEMERAL_HOST=0.0.0.0 EPHEMERAL_PORT=8080
EXPOSE 8080
VOLUME ["/data"]
CMD ["ephemeral", "serve"]
