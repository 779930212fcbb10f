"""The FHIR side of the feature contract: LOINC codes and their UCUM units, SNOMED CT conditions.

Which FHIR R4 Observation fills which contract field, in which units it is accepted and how each
unit converts into the field's canonical unit (`contract.FEATURES`); which SNOMED CT Condition
codes are which symptom or history flag. The CDS Hooks door (`app.cds`) and the README's FHIR
table read this module; a unit not listed for a code is one that "cannot be converted".
"""

from __future__ import annotations

from dataclasses import dataclass

from train_pipeline.contract import ED_COHORT, SYMPTOMS, TaskContract

LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
SNOMED_SYSTEM = "http://snomed.info/sct"
BP_PANEL = "85354-9"  # blood-pressure panel: systolic and diastolic as components


@dataclass(frozen=True)
class Unit:
    """An accepted UCUM code and its conversion: ``canonical = value * factor + offset``."""

    code: str
    factor: float = 1.0
    offset: float = 0.0
    note: str = ""

    def convert(self, value: float) -> float:
        return value * self.factor + self.offset


@dataclass(frozen=True)
class LoincCode:
    """One LOINC observation code mapped onto a contract field."""

    code: str
    feature: str
    display: str
    units: tuple[Unit, ...]

    def unit(self, ucum: str | None) -> Unit | None:
        """The accepted unit of UCUM code ``ucum``, or None when it cannot be converted."""
        for unit in self.units:
            if unit.code == ucum:
                return unit
        return None


_PER_MIN = (Unit("/min"), Unit("{beats}/min"), Unit("{breaths}/min"))
_MMHG = (Unit("mm[Hg]"),)
_PERCENT = (Unit("%"),)
_SCORE = (Unit("{score}"), Unit("1"))
_GLUCOSE = (Unit("mmol/L"), Unit("mg/dL", 1 / 18.016, note="÷ 18.016"))
_TROPONIN = (Unit("ng/L"), Unit("pg/mL"), Unit("ug/L", 1000.0, note="× 1000"))

LOINC_CODES: tuple[LoincCode, ...] = (
    LoincCode("8867-4", "heart_rate", "Heart rate", _PER_MIN[:2]),
    LoincCode("9279-1", "respiratory_rate", "Respiratory rate", (_PER_MIN[0], _PER_MIN[2])),
    LoincCode(
        "8310-5",
        "temperature",
        "Body temperature",
        (Unit("Cel"), Unit("[degF]", 5 / 9, -32 * 5 / 9, note="(°F − 32) × 5/9")),
    ),
    LoincCode("59408-5", "spo2", "Oxygen saturation by pulse oximetry", _PERCENT),
    LoincCode("2708-6", "spo2", "Oxygen saturation in arterial blood", _PERCENT),
    LoincCode("8480-6", "systolic_bp", "Systolic blood pressure", _MMHG),
    LoincCode("8462-4", "diastolic_bp", "Diastolic blood pressure", _MMHG),
    LoincCode("9269-2", "glasgow", "Glasgow coma score total", _SCORE),
    LoincCode("72514-3", "pain_scale", "Pain severity 0-10 verbal numeric rating", _SCORE),
    LoincCode("2339-0", "glucose", "Glucose [Mass/volume] in Blood", _GLUCOSE),
    LoincCode("2345-7", "glucose", "Glucose [Mass/volume] in Serum or Plasma", _GLUCOSE),
    LoincCode(
        "6690-2",
        "wbc",
        "Leukocytes [#/volume] in Blood",
        (Unit("10*9/L"), Unit("10*3/uL", note="= 10⁹/L"), Unit("/nL", note="= 10⁹/L")),
    ),
    LoincCode(
        "1988-5",
        "crp",
        "C reactive protein",
        (Unit("mg/L"), Unit("mg/dL", 10.0, note="× 10")),
    ),
    LoincCode("89579-7", "troponin", "Troponin I, high sensitivity", _TROPONIN),
    LoincCode("67151-1", "troponin", "Troponin T, high sensitivity", _TROPONIN),
    LoincCode(
        "2160-0",
        "creatinine",
        "Creatinine [Mass/volume] in Serum or Plasma",
        (Unit("umol/L"), Unit("mg/dL", 88.42, note="× 88.42")),
    ),
    LoincCode(
        "718-7",
        "hemoglobin",
        "Hemoglobin [Mass/volume] in Blood",
        (Unit("g/dL"), Unit("g/L", 0.1, note="÷ 10"), Unit("mmol/L", 1.611, note="× 1.611")),
    ),
    LoincCode(
        "2524-7",
        "lactate",
        "Lactate [Moles/volume] in Serum or Plasma",
        (Unit("mmol/L"), Unit("mg/dL", 1 / 9.008, note="÷ 9.008")),
    ),
    LoincCode(
        "1963-8",
        "bicarbonate",
        "Bicarbonate [Moles/volume] in Serum or Plasma",
        (Unit("mmol/L"), Unit("meq/L", note="= mmol/L")),
    ),
    LoincCode("39156-5", "bmi", "Body mass index", (Unit("kg/m2"),)),
)
LOINC_BY_CODE: dict[str, LoincCode] = {c.code: c for c in LOINC_CODES}

# SNOMED CT condition codes -> (contract field, symptom code or None for a boolean history flag).
SNOMED_CODES: tuple[tuple[str, str, str | None, str], ...] = (
    ("386661006", "symptoms", "fever", "Fever"),
    ("43724002", "symptoms", "chills", "Chill"),
    ("49727002", "symptoms", "cough", "Cough"),
    ("45710003", "symptoms", "sputum", "Productive cough"),
    ("267036007", "symptoms", "dyspnea", "Dyspnea"),
    ("56018004", "symptoms", "wheezing", "Wheezing"),
    ("48409008", "symptoms", "crackles", "Respiratory crackles"),
    ("162397003", "symptoms", "sore_throat", "Pain in throat"),
    ("64531003", "symptoms", "runny_nose", "Nasal discharge"),
    ("29857009", "symptoms", "chest_pain", "Chest pain"),
    ("3368006", "symptoms", "pleuritic_pain", "Pleuritic pain"),
    ("80313002", "symptoms", "palpitations", "Palpitations"),
    ("271594007", "symptoms", "syncope", "Syncope"),
    ("449614009", "symptoms", "leg_swelling", "Swelling of lower limb"),
    ("62744007", "symptoms", "orthopnea", "Orthopnea"),
    ("25064002", "symptoms", "headache", "Headache"),
    ("40917007", "symptoms", "confusion", "Clouded consciousness"),
    ("26544005", "symptoms", "focal_weakness", "Muscle weakness"),
    ("29164008", "symptoms", "speech_difficulty", "Disturbance in speech"),
    ("95666008", "symptoms", "facial_droop", "Facial weakness"),
    ("21522001", "symptoms", "abdominal_pain", "Abdominal pain"),
    ("422587007", "symptoms", "nausea", "Nausea"),
    ("422400008", "symptoms", "vomiting", "Vomiting"),
    ("62315008", "symptoms", "diarrhea", "Diarrhea"),
    ("8765009", "symptoms", "hematemesis", "Hematemesis"),
    ("2901004", "symptoms", "melena", "Melena"),
    ("28442001", "symptoms", "polyuria", "Polyuria"),
    ("17173007", "symptoms", "polydipsia", "Excessive thirst"),
    ("49650001", "symptoms", "dysuria", "Dysuria"),
    ("271681002", "symptoms", "flank_pain", "Flank pain"),
    ("84229001", "symptoms", "fatigue", "Fatigue"),
    ("404640003", "symptoms", "dizziness", "Dizziness"),
    ("417746004", "symptoms", "minor_injury", "Traumatic injury"),
    ("73211009", "diabetes", None, "Diabetes mellitus"),
    ("38341003", "hypertension", None, "Hypertensive disorder"),
    ("56265001", "heart_disease", None, "Heart disease"),
    ("13645005", "copd", None, "Chronic obstructive lung disease"),
    ("77176002", "smoker", None, "Smoker"),
)
SNOMED_BY_CODE: dict[str, tuple[str, str | None]] = {
    code: (feature, value) for code, feature, value, _ in SNOMED_CODES
}


def observation_codes() -> tuple[str, ...]:
    """Every LOINC code the service reads (the BP panel included), for the prefetch search."""
    return (*(c.code for c in LOINC_CODES), BP_PANEL)


def check(task: TaskContract = ED_COHORT) -> None:
    """Every mapped field and symptom exists in ``task`` (a test calls this)."""
    names = set(task.feature_names)
    symptoms = {code for code, _ in SYMPTOMS}
    for loinc in LOINC_CODES:
        assert loinc.feature in names, loinc
    for code, feature, value, _ in SNOMED_CODES:
        assert feature in names, code
        assert value is None or value in symptoms, code


def fhir_table_markdown(task: TaskContract = ED_COHORT) -> str:
    """The README's FHIR mapping table, generated."""
    lines = [
        "| LOINC | observation | field | canonical unit | accepted UCUM codes (conversion) |",
        "|---|---|---|---|---|",
    ]
    for c in LOINC_CODES:
        units = ", ".join(f"`{u.code}`" + (f" ({u.note})" if u.note else "") for u in c.units)
        unit = task.feature(c.feature).unit
        lines.append(f"| `{c.code}` | {c.display} | `{c.feature}` | {unit} | {units} |")
    lines.append(
        f"| `{BP_PANEL}` | Blood pressure panel | `systolic_bp`, `diastolic_bp` | mmHg | "
        "components `8480-6` and `8462-4`, as above |"
    )
    lines += ["", "| SNOMED CT (Condition) | meaning | field |", "|---|---|---|"]
    for code, feature, value, display in SNOMED_CODES:
        target = f"`{feature}`: `{value}`" if value else f"`{feature}` = true"
        lines.append(f"| `{code}` | {display} | {target} |")
    return "\n".join(lines)
