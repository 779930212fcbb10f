"""Deterministic synthetic adult emergency-department cohort (DESIGN §2).

One row per ED visit: the ED contract's features (`contract.ED_COHORT`), then ``diagnosis`` and
``treatment``. Everything is drawn from ``numpy.random.default_rng(seed)`` in a fixed order, and
values are rounded before writing, so the same ``(n_rows, seed)`` gives a byte-identical CSV (the
md5 tracked by ``dataset.dvc``).

How a row is made:

1. **Diagnosis** counts are fixed shares (`profiles.PROFILES`, documented there class by class;
   rare: ``dka`` 1.5 %, ``pulmonary_embolism`` 1.6 %, ``gi_bleed`` 1.7 %).
2. **Patient**: age and sex from the class; comorbidities from an age-rising base prevalence times
   class odds (or a fixed prevalence, e.g. COPD 88 % in COPD exacerbations); a severity
   ``s ~ Beta`` scales every class shift, so mild cases overlap other classes.
3. **Vitals, labs, symptoms, pain, GCS** from the class profile at that severity (normal or
   log-normal noise; SBP rises with age and hypertension; DBP stays ≥ 15 below SBP; glucose
   x1.6 in diabetics; creatinine rises with age and male sex). A quarter of patients
   (``ATYPICAL_SHARE``) are atypical presenters who report each hallmark symptom half as often,
   which keeps classes overlapping (a good model scores macro-F1 ~0.85-0.9, not 1.0).
4. **Label noise** (``LABEL_NOISE`` = 2 %): the recorded diagnosis is replaced by another class,
   a misdiagnosis. The treatment then follows the *recorded* diagnosis (clinicians treat what
   they diagnosed), so every (diagnosis, treatment) pair stays coherent.
5. **Treatment** by `treatments.treatment_by_rule` on the true (pre-missingness) values:
   pneumonia CURB-65 ≥ 2 -> IV antibiotics else oral; UTI with fever + flank pain or age > 75
   with confusion -> IV else oral; gastroenteritis with HR > 110, SBP < 100 or lactate > 2 -> IV
   fluids else home; stroke on anticoagulants, age > 80 with hypertension or SBP > 185 -> stroke
   unit without thrombolysis else thrombolysis; single-option classes as in
   `treatments.ALLOWED_TREATMENTS`. ``TREATMENT_NOISE`` (3 %) of two-option rows get the other
   allowed option (clinical judgement), never an incoherent one.
6. **Missingness**: vitals 1-4 % each, pain 7 %, GCS 8 %; labs depend on whether bloods were
   drawn (25-95 % by class) and on the presentation (troponin mostly with chest pain, lactate with
   fever / tachycardia / hypotension, bicarbonate with high glucose or tachypnoea), giving
   20-70 % missing labs; BMI 25 %. Booleans and sex are never missing.
7. **Outliers**: 0.3 % of rows get one extreme but in-range value (HR 185-230, T 41.5-42.5 °C,
   glucose 45-58, …); 0.05 % get an out-of-range typo (temperature 372, SBP x10, SpO2 980,
   HR 0, glucose in mg/dL, RR x10) that `clean.clean` sets to NaN.
8. **Duplicates**: 2 % of the rows are exact copies of other rows (removed by `clean.clean`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from train_pipeline import contract
from train_pipeline.data import profiles as P
from train_pipeline.data.treatments import ALLOWED_TREATMENTS, has_symptom, treatment_by_rule

logger = logging.getLogger(__name__)

DEFAULT_ROWS = 30000
DEFAULT_SEED = 42
LABEL_NOISE = 0.02
TREATMENT_NOISE = 0.03
DUPLICATE_SHARE = 0.02
OUTLIER_SHARE = 0.003
TYPO_SHARE = 0.0005
ATYPICAL_SHARE = 0.25
ATYPICAL_DAMPING = 0.5

TASK = contract.ED_COHORT
SYMPTOM_CODES = tuple(code for code, _ in contract.SYMPTOMS)
BOOLEANS = TASK.names_of("boolean")
# Decimals kept for numeric fields (integer-kind fields and booleans get 0); default 1.
_DECIMALS = {
    "age": 0,
    "heart_rate": 0,
    "systolic_bp": 0,
    "diastolic_bp": 0,
    "respiratory_rate": 0,
    "spo2": 0,
    "troponin": 0,
    "creatinine": 0,
    "bicarbonate": 0,
}
_VITAL_MISSING = {
    "heart_rate": 0.01,
    "respiratory_rate": 0.04,
    "temperature": 0.03,
    "spo2": 0.02,
    "pain_scale": 0.07,
    "glasgow": 0.08,
    "bmi": 0.25,
}


def _class_counts(n: int) -> dict[str, int]:
    counts = {code: round(p.share * n) for code, p in P.PROFILES.items()}
    counts["non_urgent"] += n - sum(counts.values())
    return counts


def _comorbidities(prof: P.ClassProfile, age: np.ndarray, rng: np.random.Generator) -> dict:
    out = {}
    for name in BOOLEANS:
        a, b = P.COMORBIDITY_BASE[name]
        p = a + b * (age - 18) / 82
        p = (
            np.full(len(age), prof.comorbidity_fixed[name])
            if name in prof.comorbidity_fixed
            else np.clip(p * prof.comorbidity_odds.get(name, 1.0), 0, 0.95)
        )
        out[name] = (rng.random(len(age)) < p).astype(int)
    return out


def _symptom_matrix(prof: P.ClassProfile, sev: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    mat = np.zeros((len(sev), len(SYMPTOM_CODES)), dtype=bool)
    # Atypical presenters report each hallmark symptom half as often.
    damp = np.where(rng.random(len(sev)) < ATYPICAL_SHARE, ATYPICAL_DAMPING, 1.0)
    for j, code in enumerate(SYMPTOM_CODES):
        spec = prof.symptoms.get(code, 0.0)
        base, extra = spec if isinstance(spec, tuple) else (spec, 0.0)
        p = (base + extra * sev) * damp
        p = np.maximum(p, P.BACKGROUND_SYMPTOMS.get(code, P.BACKGROUND_DEFAULT))
        mat[:, j] = rng.random(len(sev)) < p
    return mat


def _class_block(code: str, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """True (complete) values of ``n`` patients with diagnosis ``code``."""
    prof = P.PROFILES[code]
    age = np.clip(rng.normal(*prof.age, n), 18, 100).round()
    male = rng.random(n) < prof.male
    sev = rng.beta(*prof.severity, n)
    cols: dict[str, object] = {"age": age, "sex": np.where(male, "M", "F")}
    cols.update(_comorbidities(prof, age, rng))
    for name, (mean, sd) in P.NORMAL_VITALS.items():
        shift = np.full(n, prof.shift.get(name, 0.0))
        if code == "sepsis" and name == "temperature":
            shift[rng.random(n) < P.SEPSIS_HYPOTHERMIA] = -3.0
        cols[name] = mean + shift * sev + rng.normal(0, sd, n)
    for name, (median, sigma) in P.LOGNORMAL_LABS.items():
        factor = np.full(n, prof.factor.get(name, 1.0))
        if code == "sepsis" and name == "wbc":
            factor[rng.random(n) < P.SEPSIS_LEUKOPENIA] = 0.4
        sd = prof.sigma.get(name, sigma)
        cols[name] = median * factor**sev * np.exp(rng.normal(0, sd, n))
    cols["systolic_bp"] += 0.3 * np.clip(age - 50, 0, None) + 10 * cols["hypertension"]
    cols["diastolic_bp"] = np.minimum(cols["diastolic_bp"], cols["systolic_bp"] - 15)
    cols["spo2"] = np.minimum(cols["spo2"], 100)
    cols["glucose"] *= np.where(cols["diabetes"] == 1, 1.6, 1.0)
    cols["creatinine"] *= np.where(male, 1.15, 1.0) * (1 + 0.004 * np.clip(age - 50, 0, None))
    cols["hemoglobin"] -= np.where(male, 0.0, 1.0)
    mat = _symptom_matrix(prof, sev, rng)
    confused = mat[:, SYMPTOM_CODES.index("confusion")]
    drop = np.round(prof.gcs_drop * sev * rng.uniform(0.3, 1.3, n))
    drop = np.where(confused, np.maximum(drop, 1), np.where(rng.random(n) < 0.5, 0, drop))
    cols["glasgow"] = 15 - drop
    pain = rng.normal(*prof.pain, n) + 2 * mat[:, SYMPTOM_CODES.index("chest_pain")]
    cols["pain_scale"] = np.clip(np.round(pain), 0, 10)
    codes = np.array(SYMPTOM_CODES)
    cols["symptoms"] = [contract.SYMPTOM_SEPARATOR.join(codes[row]) for row in mat]
    block = pd.DataFrame(cols)
    block["true_diagnosis"] = code
    return block


def _label_noise(true: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    codes = np.array(list(P.PROFILES))
    noisy = true.copy()
    flip = np.flatnonzero(rng.random(len(true)) < LABEL_NOISE)
    offsets = rng.integers(1, len(codes), len(flip))
    idx = np.searchsorted(codes, true[flip], sorter=np.argsort(codes))
    positions = np.argsort(codes)[idx]
    noisy[flip] = codes[(positions + offsets) % len(codes)]
    return noisy


def _treatment_noise(df: pd.DataFrame, rng: np.random.Generator) -> pd.Series:
    treatment = df["treatment"].copy()
    flip = rng.random(len(df)) < TREATMENT_NOISE
    for code, options in ALLOWED_TREATMENTS.items():
        if len(options) < 2:
            continue
        mask = flip & (df["diagnosis"].to_numpy() == code)
        treatment[mask] = np.where(treatment[mask] == options[0], options[1], options[0])
    return treatment


def _missingness(df: pd.DataFrame, rng: np.random.Generator) -> None:
    n = len(df)
    for name, share in _VITAL_MISSING.items():
        df.loc[rng.random(n) < share, name] = np.nan
    df.loc[rng.random(n) < 0.015, ["systolic_bp", "diastolic_bp"]] = np.nan
    p_bloods = df["true_diagnosis"].map({c: p.bloods for c, p in P.PROFILES.items()}).to_numpy()
    bloods = rng.random(n) < p_bloods
    sym = df["symptoms"]
    unstable = (df["temperature"] >= 38) | (df["heart_rate"] > 100) | (df["systolic_bp"] < 100)
    cardio = (
        has_symptom(sym, "dyspnea") | has_symptom(sym, "syncope") | has_symptom(sym, "palpitations")
    )
    poc_glucose = (df["diabetes"] == 1) | has_symptom(sym, "confusion")
    measured = {
        "wbc": np.full(n, 0.96),
        "hemoglobin": np.full(n, 0.96),
        "creatinine": np.full(n, 0.95),
        "crp": np.full(n, 0.8),
        "glucose": np.full(n, 0.92),
        "lactate": np.where(unstable, 0.85, 0.3),
        "bicarbonate": np.where((df["glucose"] > 15) | (df["respiratory_rate"] > 24), 0.95, 0.5),
        "troponin": np.where(has_symptom(sym, "chest_pain"), 0.92, np.where(cardio, 0.6, 0.12)),
    }
    for name, p in measured.items():
        keep = bloods & (rng.random(n) < p)
        if name == "glucose":  # point-of-care glucose without a blood panel
            keep |= ~bloods & (rng.random(n) < np.where(poc_glucose, 0.7, 0.1))
        df.loc[~keep, name] = np.nan


def _outliers(df: pd.DataFrame, rng: np.random.Generator) -> None:
    extremes = {
        "heart_rate": (185, 230),
        "temperature": (41.5, 42.5),
        "glucose": (45, 58),
        "crp": (350, 500),
        "wbc": (45, 80),
        "spo2": (55, 65),
        "systolic_bp": (230, 260),
    }
    names = list(extremes)
    rows = np.flatnonzero(rng.random(len(df)) < OUTLIER_SHARE)
    for row, pick in zip(rows, rng.integers(0, len(names), len(rows)), strict=True):
        name = names[pick]
        if pd.notna(df.at[row, name]):
            df.at[row, name] = rng.uniform(*extremes[name])
    typos = {
        "temperature": lambda v: v * 10,
        "systolic_bp": lambda v: v * 10,
        "spo2": lambda v: 980.0,
        "heart_rate": lambda v: 0.0,
        "glucose": lambda v: max(v * 18.0, 61.0),
        "respiratory_rate": lambda v: v * 10,
    }
    names = list(typos)
    n_typos = max(len(names), round(TYPO_SHARE * len(df)))
    rows = rng.choice(len(df), n_typos, replace=False)
    for i, row in enumerate(rows):
        name = names[i % len(names)]
        if pd.notna(df.at[row, name]):
            df.at[row, name] = typos[name](df.at[row, name])


def _format(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    for feat in TASK.features:
        col = df[feat.name]
        if feat.kind in ("numeric", "integer", "boolean"):
            decimals = 0 if feat.kind != "numeric" else _DECIMALS.get(feat.name, 1)
            col = col.astype(float).round(decimals)
            if decimals == 0:
                col = col.astype("Int64")
        out[feat.name] = col
    out["diagnosis"] = df["diagnosis"]
    out["treatment"] = df["treatment"]
    return out


def generate_cohort(n_rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """Generate the synthetic ED cohort (deterministic for a given ``(n_rows, seed)``).

    Returns:
        ``n_rows`` rows: the ED contract's features, ``diagnosis`` and ``treatment`` (duplicates,
        missing values, outliers and label noise included on purpose; see the module docstring).
    """
    if n_rows < 100:
        raise ValueError(f"n_rows must be at least 100, got {n_rows}")
    rng = np.random.default_rng(seed)
    n_dup = round(DUPLICATE_SHARE * n_rows)
    blocks = [_class_block(code, k, rng) for code, k in _class_counts(n_rows - n_dup).items() if k]
    df = pd.concat(blocks, ignore_index=True)
    for feat in TASK.features:
        if feat.minimum is not None:
            df[feat.name] = df[feat.name].clip(feat.minimum, feat.maximum)
    df["diagnosis"] = _label_noise(df["true_diagnosis"].to_numpy(), rng)
    df["treatment"] = treatment_by_rule(df)
    df["treatment"] = _treatment_noise(df, rng)
    _missingness(df, rng)
    _outliers(df, rng)
    df = _format(df)
    dup_rows = df.iloc[rng.choice(len(df), n_dup, replace=False)]
    df = pd.concat([df, dup_rows], ignore_index=True)
    return df.iloc[rng.permutation(len(df))].reset_index(drop=True)


def write_cohort(path: Path, n_rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED) -> Path:
    """Generate the cohort and write it as CSV (LF line endings, stable formatting)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df = generate_cohort(n_rows=n_rows, seed=seed)
    df.to_csv(path, index=False, lineterminator="\n")
    logger.info("wrote synthetic cohort", extra={"path": str(path), "rows": len(df)})
    return path
