# syntax=docker/dockerfile:1
# The platform image: one image, every daemon (`cryptostock run|collector|processor|api|simulate|db`).
# Stage 1 installs the package into a virtualenv; stage 2 copies only that venv onto a slim base and runs
# it as an unprivileged user. tini (PID 1) forwards SIGTERM so daemons flush and close on `docker stop`.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first (cached while only the sources change), then the package itself.
COPY pyproject.toml ./
RUN python - <<'PY' > /tmp/requirements.txt
import tomllib
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))
PY
RUN pip install --upgrade pip setuptools wheel && pip install -r /tmp/requirements.txt
COPY . .
RUN pip install --no-deps . && cryptostock --help >/dev/null

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 cryptostock \
    && useradd --system --uid 10001 --gid cryptostock --home-dir /var/lib/cryptostock --shell /usr/sbin/nologin cryptostock \
    && install -d -o cryptostock -g cryptostock /var/lib/cryptostock /var/log/cryptostock
COPY --from=builder /opt/venv /opt/venv
# Outside a container every daemon binds 127.0.0.1 by default; inside one the ports must be reachable from
# the container network (Prometheus, the published API), so the image binds every interface explicitly.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LOG_DIR=/var/log/cryptostock \
    CRYPTOSTOCK_DATA_DIR=/var/lib/cryptostock \
    CRYPTOSTOCK_METRICS_ADDR=0.0.0.0 \
    CRYPTOSTOCK_HOST=0.0.0.0 \
    CRYPTOSTOCK_API_HOST=0.0.0.0
WORKDIR /var/lib/cryptostock
USER cryptostock:cryptostock
# API 8000; metrics: run 9091, collector 9092, processor 9093, api 9094, simulate 9095; simulator 8765.
EXPOSE 8000 8765 9091 9092 9093 9094 9095
STOPSIGNAL SIGTERM
# Every daemon serves /metrics on METRICS_PORT (default of `run`: 9091).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('METRICS_PORT', '9091'), timeout=3)"]
ENTRYPOINT ["/usr/bin/tini", "--", "cryptostock"]
CMD ["run"]
