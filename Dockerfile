# heatwatch services image: one image, the command picks the service (ingest, analytics, api, db init).
#
# Two stages: the first has the build tools (compilers for any wheel without a binary for this platform, npm for
# the dashboard's front-end libraries) and builds a virtual environment and frontend/node_modules; the second
# copies only those into a slim image that runs as an unprivileged user and has no compiler, npm or pip cache.
# Not built on the development machines (no Docker engine there): reviewed by hand (SECURITY.md).

FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY frontend ./frontend
RUN python -m venv /opt/heatwatch \
    && /opt/heatwatch/bin/pip install --no-cache-dir . \
    && (test ! -f frontend/package-lock.json || npm ci --prefix frontend --omit=dev --ignore-scripts)

FROM python:3.11-slim
# Runtime libraries only (the geospatial wheels bundle theirs); no build tools, no npm.
RUN groupadd --system --gid 10001 heatwatch \
    && useradd --system --uid 10001 --gid heatwatch --home-dir /data --shell /usr/sbin/nologin heatwatch \
    && mkdir -p /data && chown heatwatch:heatwatch /data
COPY --from=build /opt/heatwatch /opt/heatwatch
COPY --from=build /src/frontend /app/frontend
ENV PATH=/opt/heatwatch/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    HEATWATCH_DATA_DIR=/data \
    HEATWATCH_FRONTEND_DIR=/app/frontend \
    HEATWATCH_LOG_JSON=true
USER heatwatch:heatwatch
WORKDIR /data
VOLUME /data
ENTRYPOINT ["heatwatch"]
