# HealthPredict API image: slim, non-root, `python -m app` (the same entry point as `make run`).
# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install uv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY train_pipeline ./train_pipeline
COPY retrain ./retrain
RUN uv venv /opt/venv --python /usr/local/bin/python3.11 \
 && uv pip install --compile-bytecode --python /opt/venv/bin/python .
# (.pyc written at build: the runtime sets PYTHONDONTWRITEBYTECODE)

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HP_HOST=0.0.0.0 HP_PORT=8000 HP_WORKERS=2 \
    HP_DATA_DIR=/home/app/data \
    BENTOML_HOME=/home/app/bentoml \
    HP_DATABASE_URL=sqlite:////home/app/data/healthpredict.db
# libgomp: OpenMP runtime for CatBoost/XGBoost; curl: the HEALTHCHECK.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 app
COPY --from=build /opt/venv /opt/venv
WORKDIR /home/app
USER app
RUN mkdir -p /home/app/data /home/app/bentoml
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s \
  CMD curl -fsS http://127.0.0.1:8000/health/live || exit 1
CMD ["python", "-m", "app"]
