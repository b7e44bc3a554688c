# heatwatch services image: one image, the command picks the service (ingest, analytics, api).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY frontend ./frontend
RUN pip install --no-cache-dir . && (test ! -f frontend/package-lock.json || npm ci --prefix frontend --omit=dev)
ENV HEATWATCH_DATA_DIR=/data HEATWATCH_FRONTEND_DIR=/app/frontend HEATWATCH_LOG_JSON=true
VOLUME /data
ENTRYPOINT ["heatwatch"]
