# HealthPredict — every entry point a newcomer, CI or Docker needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_SYS ?= python3
VENV       := .venv
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed
BYTECODE   := $(VENV)/.bytecode
SYS_STAMP  := .system-packages.stamp
# Debian packages the tests and benchmarks drive for real: promtool/prometheus (scrape tests),
# chromium (drift report rendering), wrk (benchmarks).
SYS_PACKAGES := prometheus chromium wrk
COHORT     := data/clinical_cohort.csv
PYTEST_ARGS ?=

export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v uv >/dev/null 2>&1 || $(PYTHON_SYS) -m pip install --quiet uv
	@test -x $(PY) || uv venv --quiet --python $(PYTHON_SYS) $(VENV)
	uv pip install --quiet --compile-bytecode --python $(PY) -e '.[dev]'
	@touch $(STAMP)

# Bytecode for the whole venv, once per install. With PYTHONDONTWRITEBYTECODE (exported above)
# no import ever writes a .pyc, so without them every `python -m app` compiled its ~2,000 modules
# again: ready in 13-27 s instead of ~5 s. uv compiles only the packages it installs itself;
# compileall catches the rest (it skips up-to-date files: ~10 s when there is nothing to do).
$(BYTECODE): $(STAMP)
	$(PY) -m compileall -q -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
	  || echo "compileall: the files listed above did not compile; they are compiled at each import"
	@touch $(BYTECODE)

.PHONY: install
install: $(STAMP) $(BYTECODE) ## create .venv and install the project with uv (fast, idempotent)

$(SYS_STAMP):
	@missing=""; for p in $(SYS_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@touch $(SYS_STAMP)

.PHONY: install-system
install-system: $(SYS_STAMP) ## install the Debian packages tests and benchmarks use (prometheus, chromium, wrk)

.PHONY: data
data: install ## generate the synthetic ED cohort (data/clinical_cohort.csv, tracked by dataset.dvc)
	$(PY) -m train_pipeline data --out $(COHORT)
	@# caches the file when its md5 matches dataset.dvc; fails (no -f) if the generator drifted
	$(VENV)/bin/dvc commit dataset.dvc
	$(VENV)/bin/dvc status dataset.dvc

$(COHORT): | $(STAMP)
	$(PY) -m train_pipeline data --out $(COHORT)

.PHONY: train
train: install $(COHORT) ## train both pipelines, log to MLflow, register (alias champion), save to BentoML
	$(PY) -m train_pipeline train --data $(COHORT) $(TRAIN_ARGS)

.PHONY: task-results
task-results: install $(COHORT) ## train every shipped task (model search), write task_results/results.md (README table)
	$(PY) -m docs.task_results $(TASK_RESULTS_ARGS)

.PHONY: retrain
retrain: install $(COHORT) ## champion vs challenger with clinicians' corrections; promote only if better
	$(PY) -m retrain $(RETRAIN_ARGS)

ENGINE       ?= pandas
SPARK_MASTER ?=
.PHONY: score
score: install ## bulk scoring: make score INPUT=in.csv OUTPUT=out.parquet [ENGINE=pandas|spark] [SPARK_MASTER=…]
	@test -n "$(INPUT)" -a -n "$(OUTPUT)" || { echo "usage: make score INPUT=… OUTPUT=… [ENGINE=pandas|spark] [SPARK_MASTER=…]"; exit 2; }
	$(PY) -m app.scoring "$(INPUT)" "$(OUTPUT)" --engine $(ENGINE) $(if $(SPARK_MASTER),--spark-master "$(SPARK_MASTER)")

.PHONY: migrate
migrate: install ## apply the database migrations (Alembic) to HP_DATABASE_URL
	$(PY) -m app.store.db upgrade

.PHONY: run
run: install migrate $(COHORT) ## install, make data, train if no champion exists, serve on :8000
	$(PY) -m train_pipeline train --data $(COHORT) --skip-if-exists
	$(PY) -m app

.PHONY: test
test: install install-system ## install everything and run the whole test suite (all markers)
	@set +e; $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; exit $$rc

.PHONY: bench
bench: install install-system ## benchmark /predict against mlflow serve, BentoML, a bare endpoint; bulk scoring
	$(PY) bench/run.py $(BENCH_ARGS)
	$(PY) bench/cds_bench.py
	$(PY) bench/score_bench.py $(SCORE_BENCH_ARGS)
	$(PY) bench/shadow_bench.py

.PHONY: bench-shadow
bench-shadow: install install-system ## /predict p99 at 8 connections with and without a shadow challenger loaded
	$(PY) bench/shadow_bench.py $(BENCH_SHADOW_ARGS)

.PHONY: bench-cds
bench-cds: install install-system ## p50/p99 of a CDS Hooks call with a full FHIR prefetch, sequential and at 8 connections
	$(PY) bench/cds_bench.py $(BENCH_CDS_ARGS)

.PHONY: soak
soak: install $(COHORT) ## 10 minutes of mixed traffic at a steady rate: 5xx, lost feedback, p99, RSS per minute
	$(PY) -m train_pipeline train --data $(COHORT) --skip-if-exists
	$(PY) bench/soak.py $(SOAK_ARGS)

FUZZ_EXAMPLES ?= 100
.PHONY: fuzz
fuzz: install ## schemathesis over every operation, real/missing/unknown keys (make test runs 10 examples)
	HP_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) HP_FUZZ_SUMMARY=data/fuzz-summary.json \
	  $(PY) -m pytest -q -p no:randomly tests/fuzz
	@cat data/fuzz-summary.json; echo

.PHONY: lint
lint: install ## ruff lint + format check, mypy on app/, import contracts (no cycles, one direction)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache --no-logo

.PHONY: format
format: install ## ruff format and autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

.PHONY: monitoring
monitoring: install install-system ## run a local Prometheus scraping the app on :8000 with our alert rules
	@mkdir -p data/prometheus
	sed 's#api:8000#127.0.0.1:8000#' docker/prometheus/prometheus.yml > data/prometheus/prometheus.yml
	cp docker/prometheus/alerts.yml data/prometheus/alerts.yml
	prometheus --config.file=data/prometheus/prometheus.yml --storage.tsdb.path=data/prometheus/tsdb \
	  --web.listen-address=127.0.0.1:9090

.PHONY: docker
docker: ## build the images: api, and scoring (with Java for Spark) — compose file: docker-compose.yml
	docker build --target api -t healthpredict:latest .
	docker build --target scoring -t healthpredict-scoring:latest .

.PHONY: readme
readme: install ## regenerate the README's field and settings tables from the contract and Settings
	$(PY) -m docs.readme_tables --write README.md

.PHONY: clean
clean: ## remove generated data, local stores and caches (keeps .venv)
	rm -rf data/clinical_cohort.csv data/*.db mlflow.db mlruns bentoml_home .pytest_cache catboost_info
