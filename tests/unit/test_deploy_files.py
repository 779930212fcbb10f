"""Dockerfile, docker-compose.yml, Jenkinsfile and Makefile stay valid and consistent.

No Docker engine runs here, so these files are checked statically: parsed, cross-referenced with
the settings and the entry points they name.
"""

from __future__ import annotations

import importlib
import re

import pytest
import yaml

from app.settings import PROJECT_ROOT, Settings

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text()
MAKEFILE = (PROJECT_ROOT / "Makefile").read_text()
JENKINSFILE = (PROJECT_ROOT / "Jenkinsfile").read_text()


def test_compose_has_every_service_of_the_design() -> None:
    expected = {"api", "mlflow", "postgres", "redis", "worker", "beat", "prometheus", "grafana"}
    assert expected <= set(COMPOSE["services"])


def test_compose_env_vars_are_real_settings() -> None:
    fields = {f"HP_{name.upper()}" for name in Settings.model_fields}
    for name, service in COMPOSE["services"].items():
        env = service.get("environment") or {}
        for var in env:
            if var.startswith("HP_"):
                assert var in fields, f"{name}: {var} is not a setting in app/settings.py"


def test_compose_mounts_files_that_exist() -> None:
    for name, service in COMPOSE["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (PROJECT_ROOT / source).exists(), f"{name} mounts missing {source}"


@pytest.mark.parametrize("module", ["app", "train_pipeline", "retrain", "retrain.celery_app"])
def test_entry_points_named_by_compose_and_dockerfile_import(module: str) -> None:
    importlib.import_module(module)


def test_dockerfile_is_slim_non_root_and_runs_python_m_app() -> None:
    assert re.search(r"^FROM python:3\.11-slim", DOCKERFILE, re.M)
    users = re.findall(r"^USER (\S+)", DOCKERFILE, re.M)
    assert users and users[-1] not in {"root", "0"}
    assert 'CMD ["python", "-m", "app"]' in DOCKERFILE
    # Files copied from the build context (not from another stage) must exist.
    for copied in re.findall(r"^COPY (?!.*--from)(?:--\S+ )*(\S+) ", DOCKERFILE, re.M):
        assert (PROJECT_ROOT / copied).exists(), f"Dockerfile copies missing {copied}"


def test_installed_package_carries_migrations_and_task_configs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The image installs the project non-editable: run-time files must be in the wheel."""
    import subprocess
    import sys
    import zipfile

    build = f"from setuptools import build_meta; build_meta.build_wheel({str(tmp_path)!r})"
    subprocess.run([sys.executable, "-c", build], cwd=PROJECT_ROOT, check=True, capture_output=True)
    names = zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist()
    assert "app/store/migrations/env.py" in names
    assert any(n.startswith("app/store/migrations/versions/") for n in names)
    assert "train_pipeline/tasks/ed_cohort.yaml" in names


def test_makefile_has_every_target_of_the_design() -> None:
    for target in (
        "install",
        "data",
        "train",
        "retrain",
        "run",
        "test",
        "bench",
        "lint",
        "format",
        "monitoring",
        "docker",
    ):
        assert re.search(rf"^{target}:", MAKEFILE, re.M), target


def test_jenkinsfile_has_the_pipeline_stages() -> None:
    for stage in ("Lint", "Test", "Build image", "Train and package", "Deploy"):
        assert f"stage('{stage}')" in JENKINSFILE
    for target in re.findall(r"make (\w+)", JENKINSFILE):
        assert re.search(rf"^{target}:", MAKEFILE, re.M), target
