"""Generate the README's tables: fields and FHIR mapping (feature contract), settings (Settings).

`python -m docs.readme_tables --write README.md` (make readme) rewrites the marked sections; a
test fails when the README and these sources drift apart. A documentation tool, not part of the
service: it lives outside `app/` and may import both `app` and `train_pipeline`.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from app.settings import PROJECT_ROOT, Settings
from train_pipeline.contract import ED_COHORT, SYMPTOMS, feature_table_markdown
from train_pipeline.fhir_codes import fhir_table_markdown

MARKERS = ("fields", "symptoms", "classes", "settings", "fhir")


def settings_table_markdown() -> str:
    """One row per setting: env name, default, description."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        default = info.default
        if hasattr(default, "get_secret_value"):
            default = default.get_secret_value()
        text = str(default).replace(str(PROJECT_ROOT), "<project>")
        lines.append(f"| `HP_{name.upper()}` | `{text}` | {info.description or ''} |")
    return "\n".join(lines)


def symptoms_table_markdown() -> str:
    return "\n".join(
        ["| code | meaning |", "|---|---|"]
        + [f"| `{code}` | {label} |" for code, label in SYMPTOMS]
    )


def classes_table_markdown() -> str:
    lines = ["| target | code | label |", "|---|---|---|"]
    for target in (ED_COHORT.diagnosis, ED_COHORT.treatment):
        assert target is not None
        lines += [f"| {target.name} | `{code}` | {label} |" for code, label in target.classes]
    return "\n".join(lines)


def sections() -> dict[str, str]:
    return {
        "fields": feature_table_markdown(ED_COHORT),
        "symptoms": symptoms_table_markdown(),
        "classes": classes_table_markdown(),
        "settings": settings_table_markdown(),
        "fhir": fhir_table_markdown(ED_COHORT),
    }


def _escape(text: str) -> str:
    """``text`` as a literal `re.sub` replacement (backslashes doubled)."""
    return text.replace("\\", "\\\\")


def render(readme: str) -> str:
    """Replace every `<!-- BEGIN x -->…<!-- END x -->` block with its generated table."""
    for key, table in sections().items():
        pattern = re.compile(rf"(<!-- BEGIN {key} -->\n)(?:.*?\n)?(<!-- END {key} -->)", re.S)
        if not pattern.search(readme):
            raise ValueError(f"README has no <!-- BEGIN {key} --> … <!-- END {key} --> block")
        readme = pattern.sub(rf"\g<1>{_escape(table)}\n\g<2>", readme)
    return readme


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, help="README file to rewrite in place")
    args = parser.parse_args()
    if args.write:
        args.write.write_text(render(args.write.read_text()))
    else:
        for key, table in sections().items():
            print(f"## {key}\n{table}\n")


if __name__ == "__main__":
    main()
