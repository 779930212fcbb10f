"""The page as served (no browser): generated from the contract, CSP, French labels, errors."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.schemas.patient import TASK
from app.settings import Settings
from app.ui.messages import MESSAGES
from train_pipeline.contract import SYMPTOMS
from train_pipeline.labels_fr import LABELS_FR


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text of each <label for=…>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.labels: dict[str, str] = {}
        self._label: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "label":
            self._label = dict(attrs).get("for")
            if self._label:
                self.labels[self._label] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label = None

    def handle_data(self, data: str) -> None:
        if self._label:
            self.labels[self._label] += data


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root: Path = tmp_path_factory.mktemp("ui_page")
    settings = Settings(environment="test", database_url=f"sqlite:///{root / 'hp.db'}")
    # No lifespan: the page needs no model, no database.
    yield TestClient(create_app(settings))


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


def test_scripts_are_external_and_the_csp_forbids_inline_ones(client: TestClient) -> None:
    response = client.get("/ui")
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    scripts = [attrs for tag, attrs in parse(response.text).tags if tag == "script"]
    assert scripts
    for attrs in scripts:
        assert attrs.get("src") or attrs.get("type") == "application/json", attrs
    for attrs in scripts:
        if attrs.get("src"):
            assert client.get(str(attrs["src"])).status_code == 200


def test_every_contract_field_has_a_labelled_control_with_unit_and_tier(
    client: TestClient,
) -> None:
    page = parse(client.get("/ui").text)
    ids = {attrs.get("id") for tag, attrs in page.tags if tag in ("input", "select")}
    for feat in TASK.features:
        if feat.kind in ("categorical", "multilabel"):
            controls = [f"f-{feat.name}-{code}" for code in feat.categories]
        else:
            controls = [f"f-{feat.name}"]
        for control in controls:
            assert control in ids, control
            assert page.labels.get(control), f"{control} has no label"
        if feat.kind in ("numeric", "integer"):
            label = page.labels[f"f-{feat.name}"]
            assert feat.description in label and feat.unit in label
            if feat.tier in ("required", "critical"):
                assert feat.tier in label
    symptom_labels = {page.labels[f"f-symptoms-{code}"] for code, _ in SYMPTOMS}
    assert symptom_labels == {label for _, label in SYMPTOMS}


def test_french_page_uses_the_contract_french_labels(client: TestClient) -> None:
    page = parse(client.get("/ui", params={"lang": "fr"}).text)
    assert ("html", {"lang": "fr"}) in page.tags
    for feat in TASK.features:
        if feat.kind in ("numeric", "integer"):
            assert LABELS_FR["features"][feat.name] in page.labels[f"f-{feat.name}"]


def test_french_labels_cover_exactly_the_contract() -> None:
    expected: dict[str, Any] = {
        "features": set(TASK.feature_names),
        "symptoms": {code for code, _ in SYMPTOMS},
        "diagnosis": set(TASK.diagnosis.codes),
        "treatment": set(TASK.treatment.codes) if TASK.treatment else set(),
    }
    assert {k: set(v) for k, v in LABELS_FR.items()} == expected
    assert all(label.strip() for section in LABELS_FR.values() for label in section.values())


def test_an_unknown_language_gets_the_one_error_shape(client: TestClient) -> None:
    response = client.get("/ui", params={"lang": "de"})
    assert response.status_code == 422
    (detail,) = response.json()["error"]["details"]
    assert detail["value"] == "de"


def test_both_languages_have_every_message_and_none_hides_a_dict_method() -> None:
    """A key named like a dict method (`clear`) renders the method in Jinja, not the text."""
    assert MESSAGES["en"].keys() == MESSAGES["fr"].keys()
    assert not [key for key in MESSAGES["en"] if hasattr(dict, key)]


def test_the_inlined_stylesheet_is_the_one_the_csp_allows(client: TestClient) -> None:
    response = client.get("/ui")
    css = response.text.split("<style>", 1)[1].split("</style>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in response.headers["content-security-policy"]
    assert css == (Path(__file__).parents[2] / "app/ui/static/ui.css").read_text()
