"""No route and no function of the service updates or deletes an audit row: the app's routes
offer no PUT/PATCH/DELETE, and no module under `app/` builds an UPDATE or DELETE of
`predictions`, `feedback` or `audit_events` (SQLAlchemy constructs, ORM deletes or SQL text).
The runtime side (every statement of real requests) is in `test_audit_chain`."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from fastapi.routing import APIRoute

from app.main import create_app
from tests.api.conftest import make_settings

APP = Path(__file__).resolve().parents[2] / "app"
AUDIT_CLASSES = {"PredictionRow", "FeedbackRow", "AuditEventRow"}
AUDIT_TABLES = ("predictions", "feedback", "audit_events")
SQL = re.compile(r"\b(UPDATE\s+|DELETE\s+FROM\s+)(" + "|".join(AUDIT_TABLES) + r")\b", re.I)


def offences(source: str) -> list[str]:
    """UPDATE/DELETE of an audit table in ``source``, as ``line: what``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and SQL.search(node.value)
        ):
            found.append(f"{node.lineno}: SQL text")
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        names = {n.id for arg in node.args for n in ast.walk(arg) if isinstance(n, ast.Name)}
        if name in ("update", "delete") and names & AUDIT_CLASSES:
            found.append(f"{node.lineno}: {name}({', '.join(sorted(names & AUDIT_CLASSES))})")
        if name == "delete" and isinstance(func, ast.Attribute) and "session" in ast.dump(func):
            found.append(f"{node.lineno}: session.delete")
    return found


def test_no_module_updates_or_deletes_audit_rows() -> None:
    found = {
        str(path.relative_to(APP)): hits
        for path in sorted(APP.rglob("*.py"))
        if "migrations" not in path.parts and (hits := offences(path.read_text()))
    }
    assert found == {}


def test_the_scan_sees_each_kind_of_offence() -> None:
    """The scan itself, on code that does each forbidden thing."""
    bad = (
        "session.execute(update(PredictionRow).values(quality='x'))\n"
        "session.execute(delete(FeedbackRow))\n"
        "session.delete(row)\n"
        "conn.execute(text('DELETE FROM audit_events WHERE id = 1'))\n"
        "conn.execute(text('update predictions set seq = 2'))\n"
    )
    assert len(offences(bad)) == 5
    assert offences("session.execute(update(RetrainJobRow).values(status='failed'))") == []


def test_no_route_changes_or_removes_a_stored_row(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    methods = {m for r in app.routes if isinstance(r, APIRoute) for m in r.methods}
    assert methods <= {"GET", "HEAD", "POST"}, methods
