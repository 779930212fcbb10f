"""What `Predictor` returns: each `Prediction` is its DESIGN §4 response body, built directly as
dicts (a 1,000-record batch used to spend ~8 % of its CPU building dataclasses and converting
them); its attributes, and those of `DiagnosisResult` and `ClassScore`, are read-only views of
that body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from app.serving.rules import ClinicalWarning


class _View:
    """A read-only view of one block of the response body (equal when the blocks are equal)."""

    __slots__ = ("_d",)
    _d: dict[str, Any]

    @classmethod
    def of_body(cls, d: dict[str, Any]) -> Self:
        """A view of the block ``d`` (not copied: the caller hands it over)."""
        view = cls.__new__(cls)
        view._d = d
        return view

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._d == self._d  # unhashable, as __eq__ says

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._d!r})"


class _Scored(_View):
    __slots__ = ()

    @property
    def code(self) -> str:
        return self._d["code"]  # type: ignore[no-any-return]

    @property
    def label(self) -> str:
        return self._d["label"]  # type: ignore[no-any-return]

    @property
    def probability(self) -> float:
        return self._d["probability"]  # type: ignore[no-any-return]


class ClassScore(_Scored):
    """A class code, its human label and its probability."""

    __slots__ = ()

    def __init__(self, code: str, label: str, probability: float) -> None:
        self._d = {"code": code, "label": label, "probability": probability}

    def __hash__(self) -> int:
        return hash((self.code, self.label, self.probability))


class DiagnosisResult(_Scored):
    """The predicted diagnosis and the `top_k` most probable ones (itself first)."""

    __slots__ = ()

    def __init__(self, code: str, label: str, probability: float, top_k: list[ClassScore]) -> None:
        self._d = {
            "code": code,
            "label": label,
            "probability": probability,
            "top_k": [c._d for c in top_k],
        }

    @property
    def top_k(self) -> list[ClassScore]:
        return [ClassScore.of_body(c) for c in self._d["top_k"]]


@dataclass(frozen=True)
class News2:
    score: int | None
    band: str | None


class Prediction(_View):
    """Everything the API returns for one patient except ``prediction_id`` and explanation.

    It holds the DESIGN §4 response body, built once by `Predictor.predict_many`; the
    attributes read it (`diagnosis`, `treatment`, `news2` and `warnings` as typed views).
    """

    __slots__ = ()

    def __init__(
        self,
        diagnosis: DiagnosisResult | None,
        treatment: ClassScore | None,
        quality: str,
        missing_features: list[str],
        imputed_features: list[str],
        news2: News2,
        warnings: list[ClinicalWarning],
        model: dict[str, str],
    ) -> None:
        self._d = response_body(
            None if diagnosis is None else diagnosis._d,
            None if treatment is None else treatment._d,
            quality,
            missing_features,
            imputed_features,
            news2.score,
            news2.band,
            [{"code": w.code, "severity": w.severity, "message": w.message} for w in warnings],
            model,
        )

    @property
    def diagnosis(self) -> DiagnosisResult | None:
        d = self._d["diagnosis"]
        return None if d is None else DiagnosisResult.of_body(d)

    @property
    def treatment(self) -> ClassScore | None:
        t = self._d["treatment"]
        return None if t is None else ClassScore.of_body(t)

    @property
    def quality(self) -> str:
        return self._d["prediction_quality"]  # type: ignore[no-any-return]

    @property
    def missing_features(self) -> list[str]:
        return self._d["missing_features"]  # type: ignore[no-any-return]

    @property
    def imputed_features(self) -> list[str]:
        return self._d["imputed_features"]  # type: ignore[no-any-return]

    @property
    def news2(self) -> News2:
        return News2(**self._d["news2"])

    @property
    def warnings(self) -> list[ClinicalWarning]:
        return [ClinicalWarning(**w) for w in self._d["warnings"]]

    @property
    def model(self) -> dict[str, str]:
        return self._d["model"]  # type: ignore[no-any-return]

    def to_dict(self) -> dict[str, Any]:
        """The DESIGN §4 response body (without ``prediction_id`` / ``explanation``).

        A new top-level dict; the blocks inside are the prediction's own: read them only.
        """
        return dict(self._d)


def response_body(
    diagnosis: dict[str, Any] | None,
    treatment: dict[str, Any] | None,
    quality: str,
    missing: list[str],
    imputed: list[str],
    news2_score: int | None,
    news2_band: str | None,
    warnings: list[dict[str, str]],
    model: dict[str, str],
) -> dict[str, Any]:
    """The response body, keys in DESIGN §4 order."""
    return {
        "diagnosis": diagnosis,
        "treatment": treatment,
        "prediction_quality": quality,
        "missing_features": missing,
        "imputed_features": imputed,
        "news2": {"score": news2_score, "band": news2_band},
        "warnings": warnings,
        "model": dict(model),
    }
