"""THE feature contract: every input field, its unit, range, tier and aliases, plus both targets.

The generator, the training pipelines, the API schema, the drift report and the README field table
all read this module; a second list of feature names anywhere else is a bug.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Literal

Kind = Literal["numeric", "integer", "boolean", "categorical", "multilabel"]
Tier = Literal["required", "critical", "important", "optional"]


def camel_case(name: str) -> str:
    """`heart_rate` -> `heartRate` (the front-end alias every field gets)."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True)
class Feature:
    """One input field of a task.

    Attributes:
        name: canonical English snake_case name (the CSV column and the API field).
        kind: value type; ``multilabel`` is a list of codes (stored ``;``-joined in CSVs).
        unit: unit of the canonical value, or the value set for enums.
        minimum / maximum: physiological range accepted by the API (inclusive).
        tier: ``required`` (422 if absent), ``critical`` / ``important`` (missing lowers the
            prediction quality), ``optional``.
        description: clinical meaning, shown in the README and OpenAPI.
        aliases: extra accepted input names (camelCase is added automatically).
        converted_aliases: alias -> (its unit, factor to multiply into the canonical unit).
        categories: allowed codes for categorical / multilabel fields.
        value_aliases: accepted spellings of categorical codes (e.g. ``male`` -> ``M``).
        default: value used when an optional field is absent (booleans default to False).
        max_items: bound on the number of codes of a multilabel field.
    """

    name: str
    kind: Kind
    unit: str
    tier: Tier
    description: str
    minimum: float | None = None
    maximum: float | None = None
    aliases: tuple[str, ...] = ()
    converted_aliases: tuple[tuple[str, str, float], ...] = ()
    categories: tuple[str, ...] = ()
    value_aliases: tuple[tuple[str, str], ...] = ()
    default: object = None
    max_items: int | None = None

    @property
    def all_aliases(self) -> tuple[str, ...]:
        """Every accepted input name except the canonical one, camelCase first."""
        names = [camel_case(self.name), *self.aliases, *(a for a, _, _ in self.converted_aliases)]
        return tuple(dict.fromkeys(n for n in names if n != self.name))


@dataclass(frozen=True)
class Target:
    """A predicted column and its classes (code -> human label), in a fixed order."""

    name: str
    classes: tuple[tuple[str, str], ...]

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(code for code, _ in self.classes)

    def label(self, code: str) -> str:
        return dict(self.classes).get(code, code)


@dataclass(frozen=True)
class TaskContract:
    """A prediction task: its input features, a diagnosis target and an optional treatment target.

    ``allowed_pairs`` optionally overrides the diagnosis -> treatments coherence table that is
    otherwise learned from the training data.
    """

    name: str
    features: tuple[Feature, ...]
    diagnosis: Target
    treatment: Target | None = None
    allowed_pairs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    def feature(self, name: str) -> Feature:
        for feat in self.features:
            if feat.name == name:
                return feat
        raise KeyError(name)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def names_of(self, *kinds: Kind) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.kind in kinds)

    def names_in_tier(self, tier: Tier) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.tier == tier)

    def fingerprint(self) -> str:
        """Short hash of everything a model depends on; logged with each model, checked at load."""
        payload = {
            "features": [
                {"name": f.name, "kind": f.kind, "categories": list(f.categories)}
                for f in self.features
            ],
            "diagnosis": [self.diagnosis.name, list(self.diagnosis.codes)],
            "treatment": (
                [self.treatment.name, list(self.treatment.codes)] if self.treatment else None
            ),
        }
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready description (the `feature_config.json` training artifact)."""
        out = asdict(self)
        out.pop("extra", None)
        out["fingerprint"] = self.fingerprint()
        return out


# --------------------------------------------------------------------------------------------
# The default task: an adult emergency-department cohort.
# --------------------------------------------------------------------------------------------

SYMPTOMS: tuple[tuple[str, str], ...] = (
    ("fever", "Fever or feeling feverish"),
    ("chills", "Chills / rigors"),
    ("cough", "Cough"),
    ("sputum", "Productive cough with sputum"),
    ("dyspnea", "Shortness of breath"),
    ("wheezing", "Wheezing"),
    ("crackles", "Crackles on auscultation"),
    ("sore_throat", "Sore throat"),
    ("runny_nose", "Runny nose / congestion"),
    ("chest_pain", "Chest pain"),
    ("pleuritic_pain", "Pleuritic chest pain (worse on breathing)"),
    ("palpitations", "Palpitations"),
    ("syncope", "Syncope / fainting"),
    ("leg_swelling", "Leg swelling / oedema"),
    ("orthopnea", "Orthopnoea (breathless lying flat)"),
    ("headache", "Headache"),
    ("confusion", "Confusion / altered mental status"),
    ("focal_weakness", "Focal weakness (face, arm or leg)"),
    ("speech_difficulty", "Speech difficulty"),
    ("facial_droop", "Facial droop"),
    ("abdominal_pain", "Abdominal pain"),
    ("nausea", "Nausea"),
    ("vomiting", "Vomiting"),
    ("diarrhea", "Diarrhoea"),
    ("hematemesis", "Vomiting blood"),
    ("melena", "Black, tarry stools"),
    ("polyuria", "Passing a lot of urine"),
    ("polydipsia", "Excessive thirst"),
    ("dysuria", "Painful urination"),
    ("flank_pain", "Flank / loin pain"),
    ("fatigue", "Fatigue / malaise"),
    ("dizziness", "Dizziness"),
    ("minor_injury", "Minor injury (sprain, small cut)"),
)

DIAGNOSES: tuple[tuple[str, str], ...] = (
    ("non_urgent", "Non-urgent presentation"),
    ("viral_uri", "Viral upper respiratory infection"),
    ("pneumonia", "Community-acquired pneumonia"),
    ("sepsis", "Sepsis"),
    ("acs", "Acute coronary syndrome"),
    ("heart_failure", "Acute decompensated heart failure"),
    ("copd_exacerbation", "COPD exacerbation"),
    ("stroke", "Acute ischaemic stroke"),
    ("uti", "Urinary tract infection / pyelonephritis"),
    ("gastroenteritis", "Acute gastroenteritis"),
    ("dka", "Diabetic ketoacidosis"),
    ("pulmonary_embolism", "Pulmonary embolism"),
    ("gi_bleed", "Upper gastrointestinal bleeding"),
)

TREATMENTS: tuple[tuple[str, str], ...] = (
    ("discharge_home", "Discharge home with advice"),
    ("oral_antibiotics", "Oral antibiotics, discharge"),
    ("iv_antibiotics_admit", "IV antibiotics, admit"),
    ("sepsis_bundle_icu", "Sepsis bundle (fluids, broad antibiotics), ICU referral"),
    ("antiplatelet_cath_lab", "Antiplatelets, anticoagulation, cath lab"),
    ("diuretics_admit", "IV diuretics, admit"),
    ("bronchodilators_steroids", "Bronchodilators and steroids"),
    ("thrombolysis", "IV thrombolysis, stroke unit"),
    ("stroke_unit_no_thrombolysis", "Stroke unit, no thrombolysis (bleeding risk)"),
    ("insulin_protocol", "IV insulin and fluids protocol (DKA)"),
    ("iv_fluids_antiemetics", "IV fluids and antiemetics"),
    ("anticoagulation", "Therapeutic anticoagulation"),
    ("transfusion_endoscopy", "Transfusion and urgent endoscopy"),
)

_B: Kind = "boolean"
FEATURES: tuple[Feature, ...] = (
    Feature("age", "numeric", "years", "required", "Age at presentation", 18, 110),
    Feature(
        "sex",
        "categorical",
        "M / F",
        "required",
        "Sex at birth",
        aliases=("sexe",),
        categories=("M", "F"),
        value_aliases=(
            ("male", "M"),
            ("female", "F"),
            ("h", "M"),
            ("homme", "M"),
            ("femme", "F"),
            ("m", "M"),
            ("f", "F"),
        ),
    ),
    Feature(
        "heart_rate",
        "numeric",
        "beats/min",
        "critical",
        "Heart rate",
        20,
        250,
        aliases=("frequence_cardiaque",),
    ),
    Feature(
        "systolic_bp",
        "numeric",
        "mmHg",
        "critical",
        "Systolic blood pressure",
        40,
        300,
        aliases=("pression_systolique",),
    ),
    Feature(
        "diastolic_bp",
        "numeric",
        "mmHg",
        "critical",
        "Diastolic blood pressure (must be below systolic)",
        20,
        200,
        aliases=("pression_diastolique",),
    ),
    Feature(
        "respiratory_rate",
        "numeric",
        "breaths/min",
        "critical",
        "Respiratory rate",
        4,
        70,
        aliases=("frequence_respiratoire",),
    ),
    Feature("temperature", "numeric", "°C", "critical", "Body temperature", 30, 44),
    Feature(
        "spo2",
        "numeric",
        "%",
        "critical",
        "Peripheral oxygen saturation on air",
        40,
        100,
        aliases=("saturation_oxygene",),
    ),
    Feature(
        "pain_scale",
        "integer",
        "0–10",
        "important",
        "Self-reported pain score",
        0,
        10,
        aliases=("echelle_douleur",),
    ),
    Feature("glasgow", "integer", "GCS points", "important", "Glasgow coma scale", 3, 15),
    Feature(
        "glucose",
        "numeric",
        "mmol/L",
        "optional",
        "Blood glucose",
        0.5,
        60,
        converted_aliases=(("glycemie", "g/L", 5.551),),
    ),
    Feature("wbc", "numeric", "10^9/L", "optional", "White blood cell count", 0.1, 200),
    Feature("crp", "numeric", "mg/L", "optional", "C-reactive protein", 0, 600),
    Feature("troponin", "numeric", "ng/L", "optional", "High-sensitivity troponin", 0, 100000),
    Feature("creatinine", "numeric", "µmol/L", "optional", "Serum creatinine", 10, 2500),
    Feature(
        "hemoglobin", "numeric", "g/dL", "optional", "Haemoglobin", 2, 25, aliases=("hemoglobine",)
    ),
    Feature("lactate", "numeric", "mmol/L", "optional", "Venous lactate", 0.1, 30),
    Feature(
        "bicarbonate",
        "numeric",
        "mmol/L",
        "optional",
        "Serum bicarbonate (low = metabolic acidosis, the pH proxy)",
        2,
        50,
    ),
    Feature("bmi", "numeric", "kg/m²", "optional", "Body-mass index", 10, 90),
    Feature(
        "smoker",
        _B,
        "true / false",
        "optional",
        "Current smoker",
        default=False,
        aliases=("fumeur",),
    ),
    Feature(
        "diabetes",
        _B,
        "true / false",
        "optional",
        "Known diabetes",
        default=False,
        aliases=("diabete",),
    ),
    Feature("hypertension", _B, "true / false", "optional", "Known hypertension", default=False),
    Feature(
        "heart_disease",
        _B,
        "true / false",
        "optional",
        "Known heart disease (coronary or heart failure)",
        default=False,
    ),
    Feature("copd", _B, "true / false", "optional", "Known COPD", default=False, aliases=("bpco",)),
    Feature(
        "anticoagulant_use",
        _B,
        "true / false",
        "optional",
        "Takes an oral anticoagulant (bleeding risk)",
        default=False,
    ),
    Feature(
        "symptoms",
        "multilabel",
        "symptom codes",
        "optional",
        "Presenting symptoms (codes listed in the README)",
        aliases=("symptomes",),
        categories=tuple(code for code, _ in SYMPTOMS),
        default=(),
        max_items=30,
    ),
)

ED_COHORT = TaskContract(
    name="ed_cohort",
    features=FEATURES,
    diagnosis=Target("diagnosis", DIAGNOSES),
    treatment=Target("treatment", TREATMENTS),
)

SYMPTOM_SEPARATOR = ";"

# French labels of every name and code above: `train_pipeline.labels_fr` (the clinician's page,
# `/ui?lang=fr`); `tests/ui/test_page.py` checks they cover exactly the contract.


def feature_table_markdown(task: TaskContract = ED_COHORT) -> str:
    """The README's field table, generated (a test compares it with the README)."""
    lines = [
        "| field | kind | unit / values | range | tier | also accepted | meaning |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in task.features:
        rng = "" if f.minimum is None else f"{f.minimum:g}–{f.maximum:g}"
        if f.max_items:
            rng = f"≤ {f.max_items} codes"
        converted = {a for a, _, _ in f.converted_aliases}
        also = [f"`{a}`" for a in f.all_aliases if a not in converted]
        also += [f"`{a}` (in {unit}, ×{k:g})" for a, unit, k in f.converted_aliases]
        lines.append(
            f"| `{f.name}` | {f.kind} | {f.unit} | {rng} | {f.tier} | {', '.join(also)} "
            f"| {f.description} |"
        )
    return "\n".join(lines)
