# HealthPredict images: slim, non-root. Stages: `api` (`python -m app`, the same entry point as
# `make run`; also the trainer, Celery and MLflow services) and `scoring` (the api image plus a
# Java 17 runtime for `python -m app.scoring --engine spark`). `make docker` builds both.
# Linted by hadolint in tests/unit/test_deploy_files.py.
# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install uv==0.13.9
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY train_pipeline ./train_pipeline
COPY retrain ./retrain
RUN uv venv /opt/venv --python /usr/local/bin/python3.11 \
 && uv pip install --compile-bytecode --python /opt/venv/bin/python .
# (.pyc written at build: the runtime sets PYTHONDONTWRITEBYTECODE)

FROM python:3.11-slim AS api
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HP_HOST=0.0.0.0 HP_PORT=8000 HP_WORKERS=2 \
    HP_MODEL_POLL_INTERVAL_S=30 \
    HP_DATA_DIR=/home/app/data \
    BENTOML_HOME=/home/app/bentoml \
    HP_DATABASE_URL=sqlite:////home/app/data/healthpredict.db
# libgomp: OpenMP runtime for CatBoost/XGBoost; curl: the HEALTHCHECK. Debian's security
# updates replace exact versions, so they are not pinned (the base image tag is).
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 app
COPY --from=build /opt/venv /opt/venv
WORKDIR /home/app
USER 10001
RUN mkdir -p /home/app/data /home/app/bentoml
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s \
  CMD ["curl", "-fsS", "http://127.0.0.1:8000/health/live"]
CMD ["python", "-m", "app"]

# Bulk scoring job: `docker compose run --rm scoring /home/app/scoring/in.csv
# /home/app/scoring/out.parquet --engine spark` (README, "Bulk scoring").
FROM api AS scoring
USER 0
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /home/app/scoring && chown 10001 /home/app/scoring
ENV HP_SPARK_MASTER=local[*]
USER 10001
HEALTHCHECK NONE
ENTRYPOINT ["python", "-m", "app.scoring"]
CMD ["--help"]

# The default target stays the API image.
FROM api
