"""`python -m train_pipeline` reads the service's HP_* variables itself, with the same defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.settings import Settings
from train_pipeline.__main__ import CliDefaults, _parser

SHARED = list(CliDefaults.model_fields)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No HP_*, MLflow or BentoML variables, and no .env file in the working directory."""
    for key in [k for k in os.environ if k.startswith("HP_")]:
        monkeypatch.delenv(key)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("BENTOML_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def _same(cli: CliDefaults, settings: Settings) -> None:
    for name in SHARED:
        assert getattr(cli, name) == getattr(settings, name), name


def test_every_shared_field_is_a_setting() -> None:
    assert set(SHARED) <= set(Settings.model_fields)


def test_defaults_equal_the_service_settings(clean_env: pytest.MonkeyPatch) -> None:
    _same(CliDefaults(), Settings())


def test_hp_variables_and_the_tools_own_variables_apply_alike(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    clean_env.setenv("BENTOML_HOME", str(tmp_path / "bento"))
    clean_env.setenv("HP_MODEL_ALIAS", "staging")
    clean_env.setenv("HP_TRAINING_DATA_PATH", str(tmp_path / "cohort.csv"))
    _same(CliDefaults(), Settings())
    assert CliDefaults().mlflow_tracking_uri == "http://mlflow:5000"
    clean_env.setenv("HP_MLFLOW_TRACKING_URI", "sqlite:///x.db")  # the HP_ one wins
    _same(CliDefaults(), Settings())
    assert CliDefaults().mlflow_tracking_uri == "sqlite:///x.db"


def test_dotenv_is_read_like_the_service(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("HP_DIAGNOSIS_MODEL_NAME=dx\nHP_BENTOML_HOME=/srv/bento\n")
    _same(CliDefaults(), Settings())
    assert CliDefaults().diagnosis_model_name == "dx"


def test_cli_options_default_to_them(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("HP_MLFLOW_TRACKING_URI", "sqlite:///y.db")
    settings = Settings()
    train = _parser().parse_args(["train", "--skip-if-exists"])
    assert train.tracking_uri == settings.mlflow_tracking_uri
    assert train.bentoml_home == settings.bentoml_home
    assert train.alias == settings.model_alias
    assert train.default_data == settings.training_data_path and train.data is None
    names = (train.diagnosis_model_name, train.treatment_model_name)
    assert names == (settings.diagnosis_model_name, settings.treatment_model_name)
    assert _parser().parse_args(["data"]).out == settings.training_data_path
    given = _parser().parse_args(["train", "--tracking-uri", "http://h:1", "--alias", "a"])
    assert (given.tracking_uri, given.alias) == ("http://h:1", "a")
