"""The clinician's page end to end: headless Chromium (Playwright) against `python -m app`
serving the tiny trained bundle; every answer checked against the API and the database.

``HP_UPDATE_DOCS_SCREENSHOT=1`` refreshes the README's screenshots under docs/.
"""

from __future__ import annotations

import csv
import re
import sqlite3
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
from playwright.sync_api import expect

from app.schemas.patient import PATIENT_EXAMPLE, TASK
from app.serving.rules import Severity
from app.settings import DEFAULT_ADMIN_KEY, DEFAULT_CLINICIAN_KEY
from tests.factories import DROP, cohort_payloads, make_patient
from tests.ui._page import (
    axe_violations,
    open_as_admin,
    open_page,
    predict,
    screenshot,
    tab_to,
)
from tests.ui.conftest import UiApp
from train_pipeline.labels_fr import LABELS_FR

pytestmark = [pytest.mark.integration]
SEVERITY = list(reversed(get_args(Severity)))  # most severe first, as the page lists them
CLINICIAN = {"X-API-Key": DEFAULT_CLINICIAN_KEY}
ADMIN = {"X-API-Key": DEFAULT_ADMIN_KEY}


def api_predict(app: UiApp, patient: dict[str, Any], **params: Any) -> dict[str, Any]:
    response = httpx.post(f"{app.base}/predict", json=patient, headers=CLINICIAN, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def feedback_rows(app: UiApp, prediction_id: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(app.db_path) as db:
        return db.execute(
            "SELECT verdict, corrected_diagnosis, corrected_treatment, reason, clinician_id "
            "FROM feedback WHERE prediction_id = ?",
            (prediction_id,),
        ).fetchall()


def test_answer_warnings_chart_then_correction_lands_in_db(
    page: Any, ui_app: UiApp, tmp_path: Path
) -> None:
    expected = api_predict(ui_app, PATIENT_EXAMPLE, explain="true")
    open_page(page)
    screenshot(page.locator("#patient"), tmp_path, "ui_form.png")
    predict(page, PATIENT_EXAMPLE)

    diagnosis = expected["diagnosis"]["code"]
    assert page.text_content("#diagnosis") == TASK.diagnosis.label(diagnosis)
    assert page.text_content("#quality") == expected["prediction_quality"]
    warnings = page.locator("#warnings li")
    assert warnings.count() == len(expected["warnings"]) > 0
    severities = [w["severity"] for w in expected["warnings"]]
    assert warnings.first.get_attribute("class") == f"sev-{min(severities, key=SEVERITY.index)}"
    bars = page.locator("#shap-chart g.bar")
    assert bars.count() == len(expected["explanation"]) > 0
    first = expected["explanation"][0]
    sentence = bars.first.locator("text title").text_content()  # in full (the bar may cut it)
    verb = "raised" if first["contribution"] >= 0 else "lowered"
    assert sentence.endswith(f"{verb} {TASK.diagnosis.label(diagnosis)}"), sentence
    feature = TASK.feature(first["feature"])
    label = re.sub(r"\s*\([^)]*\)$", "", feature.description)  # without its trailing note
    name = "Symptoms" if feature.kind == "multilabel" else label
    assert sentence.startswith(name), sentence
    screenshot(page.locator("#answer"), tmp_path, "ui_answer.png")

    # Correct it: another diagnosis, a treatment among those coherent with it only.
    prediction_id = page.text_content("#prediction-id")
    models = httpx.get(f"{ui_app.base}/models", headers=CLINICIAN).json()
    other = next(c for c in models["allowed_pairs"] if c != diagnosis)
    page.check("#v-wrong_diagnosis")
    page.select_option("#corrected_diagnosis", other)
    offered = page.eval_on_selector_all(
        "#corrected_treatment option", "os => os.map(o => o.value).filter(Boolean)"
    )
    assert offered and set(offered) <= set(models["allowed_pairs"][other]), offered
    page.select_option("#corrected_treatment", offered[0])
    page.fill("#reason", "lactate high after fluids")
    page.fill("#clinician_id", "clin-ui-1")
    page.click("#send-feedback")
    expect(page.locator("#feedback-status")).to_have_text("Verdict recorded.")
    assert feedback_rows(ui_app, prediction_id) == [
        ("wrong_diagnosis", other, offered[0], "lactate high after fluids", "clin-ui-1")
    ]

    page.click("#send-feedback")  # the same clinician again: shown as already recorded
    expect(page.locator("#feedback-status")).to_contain_text("Already recorded")
    assert len(feedback_rows(ui_app, prediction_id)) == 1


def test_out_of_range_value_shows_the_api_error_at_its_field(page: Any, ui_app: UiApp) -> None:
    bad = make_patient(heart_rate=400)
    api = httpx.post(f"{ui_app.base}/predict", json=bad, headers=CLINICIAN).json()
    (detail,) = [d for d in api["error"]["details"] if d["field"] == "heart_rate"]
    open_page(page)
    page.fill("#f-heart_rate", "400")  # the browser's range hint does not stop the request
    predict_fails = page.locator("#e-heart_rate")
    for name, value in make_patient(heart_rate=DROP).items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            page.fill(f"#f-{name}", str(value))
    page.check("#f-sex-F")
    page.click("#predict")
    expect(predict_fails).to_contain_text(detail["reason"])
    assert page.get_attribute("#f-heart_rate", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "f-heart_rate"
    assert page.is_hidden("#answer")
    assert api["error"]["message"] in page.text_content("#form-errors")


def test_abstention_reads_as_such(page: Any, ui_app: UiApp, tmp_path: Path) -> None:
    required = {name: PATIENT_EXAMPLE[name] for name in TASK.names_in_tier("required")}
    expected = api_predict(ui_app, required)
    assert expected["prediction_quality"] == "insufficient"
    open_page(page)
    predict(page, required)
    text = page.text_content("#abstention")
    assert "abstention" in text
    critical = set(TASK.names_in_tier("critical"))
    for name in expected["missing_features"]:
        assert (TASK.feature(name).description in text) == (name in critical), name
    assert page.locator("#diagnosis").count() == 0
    assert page.is_disabled("#v-correct")  # nothing to confirm
    assert page.is_hidden("#chart")
    screenshot(page.locator("#answer"), tmp_path, "ui_abstention.png")


def write_patients_csv(path: Path, patients: list[dict[str, Any]]) -> Path:
    columns = [*TASK.feature_names, "diagnosis"]  # a label column: ignored, and said so
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for patient in patients:
            row = {k: (";".join(v) if isinstance(v, list) else v) for k, v in patient.items()}
            writer.writerow({**{k: int(v) if isinstance(v, bool) else v for k, v in row.items()}})
    return path


def test_list_of_20_patients_scored_sorted_and_downloaded(
    page: Any, ui_app: UiApp, tmp_path: Path
) -> None:
    patients = cohort_payloads(ui_app.store.data_path, 40, seed=17)[:20]
    assert len(patients) == 20
    upload = write_patients_csv(tmp_path / "patients.csv", patients)
    expected = httpx.post(
        f"{ui_app.base}/predict/batch", json={"records": patients}, headers=CLINICIAN
    ).json()["predictions"]

    open_page(page)
    page.set_input_files("#csv-file", str(upload))
    page.click("#score")
    rows = page.locator("#list-results tbody tr")
    rows.nth(19).wait_for()
    assert rows.count() == 20
    assert "diagnosis" in page.text_content("#list-status")  # the ignored column is named
    shown = page.eval_on_selector_all(
        "#list-results tbody tr", "rs => rs.map(r => r.cells[1].textContent)"
    )
    assert shown == [
        TASK.diagnosis.label(p["diagnosis"]["code"]) if p["diagnosis"] else "—" for p in expected
    ]
    page.click("#list-results th button[data-sort=quality]")
    assert page.get_attribute("#list-results th:nth-child(5)", "aria-sort") == "ascending"
    qualities = page.eval_on_selector_all(
        "#list-results tbody tr", "rs => rs.map(r => r.cells[4].textContent)"
    )
    rank = ["high", "medium", "low", "insufficient"]
    assert qualities == sorted(qualities, key=rank.index)

    with page.expect_download() as info:
        page.click("#download")
    saved = tmp_path / "download.csv"
    info.value.save_as(saved)
    with saved.open() as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 20
    assert [r["row"] for r in table] == [str(i) for i in range(1, 21)]
    ids = {r["prediction_id"] for r in table}
    with sqlite3.connect(ui_app.db_path) as db:
        stored = {row[0] for row in db.execute("SELECT id FROM predictions")}
    assert ids <= stored


def test_ops_view_shows_the_served_versions(page: Any, ui_app: UiApp, tmp_path: Path) -> None:
    models = httpx.get(f"{ui_app.base}/models", headers=ADMIN).json()
    open_as_admin(page)
    page.click("#ops-load")
    card = page.locator("#ops-models")
    card.wait_for()
    text = card.text_content()
    for served in models["models"]:
        assert f"v{served['version']}" in text
        assert served["name"] in text
    assert models["run_id"] in text and models["source"] in text
    page.locator("#ops-feedback").wait_for()
    assert "Retraining recommended" in page.text_content("#ops-feedback")
    page.locator("#ops-drift").wait_for()  # the last background report, or why there is none
    shadow = httpx.get(f"{ui_app.base}/models/shadow", headers=ADMIN)
    assert page.locator("#ops-shadow").count() == (1 if shadow.status_code == 200 else 0)
    screenshot(page.locator("#ops"), tmp_path, "ui_ops.png")


def test_french_labels(page: Any, ui_app: UiApp) -> None:
    expected = api_predict(ui_app, PATIENT_EXAMPLE)
    open_page(page, path="/ui?lang=fr")
    assert page.get_attribute("html", "lang") == "fr"
    label = page.text_content("label[for=f-heart_rate]")
    assert LABELS_FR["features"]["heart_rate"] in label
    predict(page, PATIENT_EXAMPLE)
    code = expected["diagnosis"]["code"]
    assert page.text_content("#diagnosis") == LABELS_FR["diagnosis"][code]


def test_keyboard_alone_predicts_and_confirms(page: Any, ui_app: UiApp) -> None:
    page.goto("/ui")
    tab_to(page, "#api-key")
    page.keyboard.type(DEFAULT_CLINICIAN_KEY)
    page.keyboard.press("Enter")
    expect(page.locator("#key-status")).to_have_text("Key in use for this tab.")
    for name, value in PATIENT_EXAMPLE.items():
        if name == "sex":
            tab_to(page, "#f-sex-M")  # a radio group: arrows move and check
            page.keyboard.press("ArrowRight" if value == "F" else "Space")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            tab_to(page, f"#f-{name}")
            page.keyboard.type(str(value))
    tab_to(page, "#symptom-filter")
    page.keyboard.type("cough")
    tab_to(page, "#f-symptoms-cough")
    page.keyboard.press("Space")
    tab_to(page, "#predict")
    page.keyboard.press("Enter")
    page.wait_for_selector("#answer:not([hidden])")
    assert page.evaluate("document.activeElement.id") == "answer"  # focus moved to the answer
    assert page.is_checked("#f-sex-F") and page.is_checked("#f-symptoms-cough")
    tab_to(page, "#clinician_id")
    page.keyboard.type("clin-keyboard")
    page.keyboard.press("Enter")
    expect(page.locator("#feedback-status")).to_have_text("Verdict recorded.")
    rows = feedback_rows(ui_app, page.text_content("#prediction-id"))
    assert rows == [("correct", None, None, None, "clin-keyboard")]


def test_every_control_labelled_and_axe_finds_nothing_serious(page: Any, ui_app: UiApp) -> None:
    open_page(page)
    unlabelled = page.eval_on_selector_all(
        "input, select, textarea",
        "cs => cs.filter(c => c.type !== 'hidden' && !(c.labels && c.labels.length)"
        " && !c.getAttribute('aria-label')).map(c => c.id || c.name)",
    )
    assert unlabelled == []
    assert axe_violations(page) == []
    predict(page, PATIENT_EXAMPLE)
    page.check("#v-both_wrong")
    assert axe_violations(page) == []
    page.click("#ops-load")
    page.locator("#ops-models").wait_for()
    page.click("#predict")  # an answer, feedback and the ops view all on screen
    assert axe_violations(page) == []


def test_csp_refuses_inline_script(page: Any, ui_app: UiApp, console: Any) -> None:
    """Control of the CSP and of the page fixture's check: an injected inline script does not
    run, and the refusal is what the fixture looks for in the console."""
    response = page.goto("/ui")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.injected = 1'; document.body.append(s); }"
    )
    assert page.evaluate("window.injected") is None
    page.wait_for_timeout(100)
    refused = [e for e in console.errors if "Content Security Policy" in e]
    assert refused, console.errors
    console.errors.clear()  # expected here; any other test producing one fails


def test_no_patient_value_reaches_the_app_log(page: Any, ui_app: UiApp) -> None:
    """The page's requests (page, scripts, the API calls it makes) are logged without any value
    typed into it: distinctive numbers and a free-text reason are looked for in the log."""
    open_page(page)
    # Values no latency or id in the log could spell by chance (ms are logged to 3 decimals).
    predict(page, make_patient(crp=587.31, troponin=98765.4))
    page.fill("#reason", "sentinel-reason-7f3a")
    page.fill("#clinician_id", "clin-log")
    page.click("#send-feedback")
    expect(page.locator("#feedback-status")).to_have_text("Verdict recorded.")
    log = ui_app.log_path.read_text(errors="replace")
    assert '"route":"/ui"' in log and '"route":"/predict"' in log  # the requests were logged
    for needle in (r"587\.31", r"98765\.4", "sentinel-reason"):
        assert not re.search(rf"(?<![\d.]){needle}(?!\d)", log), needle
