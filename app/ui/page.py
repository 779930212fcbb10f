"""The page's view model, generated from the feature contract, and its rendering (Jinja2).

No feature is named here: fields, labels, units, ranges, tiers and codes come from
`train_pipeline.contract` (French labels from its ``LABELS_FR``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from app.schemas.patient import TASK
from app.ui.messages import MESSAGES
from train_pipeline.contract import SYMPTOMS, Feature, Target
from train_pipeline.labels_fr import LABELS_FR

Lang = Literal["en", "fr"]
TEMPLATES = Path(__file__).parent / "templates"
STYLESHEET = Path(__file__).parent / "static" / "ui.css"
# Form sections, in order (message keys); `section_of` puts every feature in exactly one.
SECTIONS = (
    "section_required",
    "section_critical",
    "section_important",
    "section_optional",
    "section_history",
    "section_symptoms",
)


def section_of(feat: Feature) -> str:
    """Required, critical and important fields by tier; optional ones by kind."""
    if feat.tier != "optional":
        return f"section_{feat.tier}"
    return {"boolean": "section_history", "multilabel": "section_symptoms"}.get(
        feat.kind, "section_optional"
    )


@dataclass(frozen=True)
class Field:
    """One form control, as the template and the scripts need it."""

    name: str
    kind: str
    label: str
    unit: str
    tier: str
    minimum: float | None
    maximum: float | None
    options: tuple[tuple[str, str], ...]  # (code, label) for categorical / multilabel
    max_items: int | None

    @property
    def range_text(self) -> str:
        if self.minimum is None or self.maximum is None:
            return ""
        return f"{self.minimum:g}–{self.maximum:g}"

    @property
    def step(self) -> str:
        return "1" if self.kind == "integer" else "any"


def feature_label(feat: Feature, lang: Lang) -> str:
    return LABELS_FR["features"][feat.name] if lang == "fr" else feat.description


def class_labels(target: Target | None, section: str, lang: Lang) -> dict[str, str]:
    """Code -> label of a target's classes (or of the symptom codes) in ``lang``."""
    if target is None:
        return {}
    if lang == "fr":
        return {code: LABELS_FR[section][code] for code in target.codes}
    return dict(target.classes)


def symptom_labels(feat: Feature, lang: Lang) -> tuple[tuple[str, str], ...]:
    english = dict(SYMPTOMS)
    labels = LABELS_FR["symptoms"] if lang == "fr" else english
    return tuple((code, labels.get(code, english.get(code, code))) for code in feat.categories)


def to_field(feat: Feature, lang: Lang) -> Field:
    if feat.kind == "multilabel":
        options = symptom_labels(feat, lang)
    else:
        options = tuple((code, code) for code in feat.categories)
    return Field(
        name=feat.name,
        kind=feat.kind,
        label=feature_label(feat, lang),
        unit=feat.unit,
        tier=feat.tier,
        minimum=feat.minimum,
        maximum=feat.maximum,
        options=options,
        max_items=feat.max_items,
    )


def sections(lang: Lang) -> list[tuple[str, list[Field]]]:
    """(title, fields) of each non-empty form section, in `SECTIONS` order."""
    text = MESSAGES[lang]
    grouped = [
        (text[key], [to_field(f, lang) for f in TASK.features if section_of(f) == key])
        for key in SECTIONS
    ]
    return [(title, fields) for title, fields in grouped if fields]


def page_data(lang: Lang, batch_max: int) -> dict[str, Any]:
    """What the scripts need: fields, class labels, UI text and the batch limit (JSON)."""
    fields = [asdict(to_field(f, lang)) for f in TASK.features]
    return {
        "lang": lang,
        "fields": fields,
        "diagnoses": class_labels(TASK.diagnosis, "diagnosis", lang),
        "treatments": class_labels(TASK.treatment, "treatment", lang),
        "text": MESSAGES[lang],
        "batch_max": batch_max,
    }


@lru_cache(maxsize=1)
def stylesheet() -> tuple[str, str]:
    """The page's CSS and its CSP source (``'sha256-…'``).

    Inlined rather than linked: one request fewer before the first paint (median 204 -> 164 ms,
    40 interleaved cold loads, `bench/ui_paint.py`'s method), and the hash in the CSP still
    refuses any other inline style.
    """
    css = STYLESHEET.read_text()
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    return css, f"'sha256-{digest}'"


@lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(("html",)),
        trim_blocks=True,
        lstrip_blocks=True,
    )


@lru_cache(maxsize=8)
def render_page(lang: Lang, static: str, batch_max: int) -> str:
    """The whole page; the same for every caller, so rendered once per language."""
    data = json.dumps(page_data(lang, batch_max), ensure_ascii=False).replace("</", "<\\/")
    return (
        environment()
        .get_template("page.html")
        .render(
            lang=lang,
            text=MESSAGES[lang],
            sections=sections(lang),
            static=static,
            css=Markup(stylesheet()[0]),  # our own file, hashed in the CSP
            page_data=Markup(data),  # JSON in a non-executed <script type="application/json">
        )
    )
