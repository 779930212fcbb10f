"""YAML task configs: train on any clinical CSV by naming its features, markers and target(s).

A config (``train_pipeline/tasks/<name>.yaml``) says where the CSV is, which columns are features
(kind, unit, range, tier), how raw values map to canonical ones, which cells mean "missing" and
which column(s) are the diagnosis / treatment targets. `TaskConfig.to_contract` turns it into the
`contract.TaskContract` everything downstream reads. The built-in ``ed_cohort`` config points at
`contract.ED_COHORT` (``contract: ed_cohort``) instead of restating its features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from train_pipeline import contract
from train_pipeline.contract import TaskContract

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TASKS_DIR = Path(__file__).resolve().parent / "tasks"
DEFAULT_SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
"""Where real public CSVs live (``../shared/data`` beside the project); never copied in."""
DEFAULT_NA_VALUES = ("?", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "")
BUILTIN_CONTRACTS = {"ed_cohort": contract.ED_COHORT}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureConfig(_Strict):
    """One feature column of a task.

    ``value_map`` maps raw cell values (after whitespace stripping; numbers written as ``1.0``
    are matched as ``1``) to canonical values; ``missing_values`` are extra per-column sentinels
    meaning "not measured" (e.g. Pima's zeros); ``scale`` multiplies numeric values after parsing
    (e.g. age in days -> years).
    """

    name: str
    column: str | None = None
    kind: contract.Kind = "numeric"
    unit: str = ""
    tier: contract.Tier = "optional"
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] = ()
    value_map: dict[str, Any] = Field(default_factory=dict)
    missing_values: tuple[Any, ...] = ()
    scale: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _stringify(cls, data: Any) -> Any:
        # YAML reads `1: M` with an int key; raw cells are matched as text.
        if isinstance(data, dict) and isinstance(data.get("value_map"), dict):
            data = {**data, "value_map": {str(k): v for k, v in data["value_map"].items()}}
        return data

    def to_feature(self) -> contract.Feature:
        return contract.Feature(
            name=self.name,
            kind=self.kind,
            unit=self.unit,
            tier=self.tier,
            description=self.description or self.name,
            minimum=self.minimum,
            maximum=self.maximum,
            categories=tuple(self.categories),
            default=False if self.kind == "boolean" else None,
        )


class TargetConfig(_Strict):
    """A target column: its CSV column, the output name and its classes (code -> label)."""

    column: str
    name: str = ""
    classes: dict[str, str]
    value_map: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _stringify(cls, data: Any) -> Any:
        # YAML reads `1: psoriasis` with an int key; class codes are strings.
        if isinstance(data, dict):
            data = dict(data)
            for key in ("classes", "value_map"):
                if isinstance(data.get(key), dict):
                    data[key] = {str(k): str(v) for k, v in data[key].items()}
        return data

    def to_target(self) -> contract.Target:
        return contract.Target(self.name, tuple(self.classes.items()))


class OperatingPointConfig(_Strict):
    """The decision threshold of a binary task, chosen on out-of-fold predictions: the highest
    threshold reaching a ``sensitivity``, or the one maximising ``metric`` (F-beta)."""

    sensitivity: float | None = Field(None, gt=0, lt=1)
    metric: Literal["f1", "f2"] | None = None

    @model_validator(mode="after")
    def _one(self) -> OperatingPointConfig:
        if (self.sensitivity is None) == (self.metric is None):
            raise ValueError("operating_point: give exactly one of `sensitivity` or `metric`")
        return self


class TaskConfig(_Strict):
    """A prediction task read from YAML (see the module docstring and ``tasks/*.yaml``)."""

    name: str
    description: str = ""
    csv: str
    csv_root: Literal["shared", "project"] = "shared"
    contract: str | None = None
    features: tuple[FeatureConfig, ...] = ()
    renames: dict[str, str] = Field(default_factory=dict)
    na_values: tuple[str, ...] = DEFAULT_NA_VALUES
    diagnosis: TargetConfig | None = None
    treatment: TargetConfig | None = None
    allowed_pairs: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    tolerated_bad_fraction: float = Field(0.05, ge=0, le=1)
    # model selection's CV score (``roc_auc`` is one-vs-rest for several classes; ``f2`` binary)
    primary_metric: Literal["f1_macro", "roc_auc", "f2"] = "f1_macro"
    operating_point: OperatingPointConfig | None = None  # binary tasks only

    @model_validator(mode="before")
    @classmethod
    def _default_target_names(cls, data: Any) -> Any:
        # Targets are output as `diagnosis` / `treatment` unless the YAML names them.
        if isinstance(data, dict):
            data = dict(data)
            for key in ("diagnosis", "treatment"):
                if isinstance(data.get(key), dict) and not data[key].get("name"):
                    data[key] = {**data[key], "name": key}
        return data

    @model_validator(mode="after")
    def _check(self) -> TaskConfig:
        binary = self.diagnosis is not None and len(self.diagnosis.classes) == 2
        if (self.operating_point is not None or self.primary_metric == "f2") and not binary:
            raise ValueError(
                f"task {self.name!r}: `operating_point` and primary_metric `f2` need a binary "
                "diagnosis"
            )
        if self.contract is not None:
            if self.contract not in BUILTIN_CONTRACTS:
                raise ValueError(f"unknown built-in contract {self.contract!r}")
            return self
        if not self.features or self.diagnosis is None:
            raise ValueError(
                f"task {self.name!r}: give `features` and `diagnosis` "
                "(or `contract:` naming a built-in task)"
            )
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"task {self.name!r}: duplicate feature names")
        return self

    def resolve_csv(self, data_root: Path | None = None) -> Path:
        """Absolute CSV path: ``csv`` under the shared data root or the project root."""
        if Path(self.csv).is_absolute():
            return Path(self.csv)
        if self.csv_root == "project":
            return PROJECT_ROOT / self.csv
        return Path(data_root or DEFAULT_SHARED_DATA) / self.csv

    def to_contract(self) -> TaskContract:
        """The `TaskContract` of this task (the built-in one when ``contract`` is set)."""
        if self.contract is not None:
            base = BUILTIN_CONTRACTS[self.contract]
            if not self.allowed_pairs:
                return base
            return contract.TaskContract(
                base.name, base.features, base.diagnosis, base.treatment, self._pairs()
            )
        assert self.diagnosis is not None  # checked by _check
        return contract.TaskContract(
            name=self.name,
            features=tuple(f.to_feature() for f in self.features),
            diagnosis=self.diagnosis.to_target(),
            treatment=self.treatment.to_target() if self.treatment else None,
            allowed_pairs=self._pairs(),
        )

    def _pairs(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return tuple((d, tuple(t)) for d, t in self.allowed_pairs.items())

    def all_renames(self) -> dict[str, str]:
        """CSV column -> canonical name: ``renames``, each feature's ``column``, the targets."""
        out = dict(self.renames)
        out.update({f.column: f.name for f in self.features if f.column and f.column != f.name})
        for target in (self.diagnosis, self.treatment):
            if target is not None and target.column != target.name:
                out[target.column] = target.name
        return out


def available_tasks() -> list[str]:
    """Names of the shipped task configs."""
    return sorted(p.stem for p in TASKS_DIR.glob("*.yaml"))


def load_task_config(name_or_path: str | Path = "ed_cohort") -> TaskConfig:
    """Load a task config by shipped name (``heart_cleveland``) or by YAML path.

    Raises:
        FileNotFoundError: neither a shipped task nor an existing file.
        ValueError: the YAML does not describe a valid task (pydantic's message names the field).
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = TASKS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"task config {name_or_path!r} not found (shipped: {', '.join(available_tasks())})"
        )
    with path.open(encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a task config must be a YAML mapping")
    return TaskConfig.model_validate(raw)
