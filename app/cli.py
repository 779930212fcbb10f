"""`python -m app audit verify` and `python -m app keys new`: the operator's commands
(`python -m app` with no command serves, see `app.__main__`)."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import timedelta

from app.settings import get_settings

UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"^(\d+)([mhdw])$")


def duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``2w`` as a timedelta."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError("a duration like 90d, 12h, 30m or 2w")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


def keys_new(role: str, lifetime: timedelta | None) -> int:
    """Print a new key (once) and the entry to configure (its salted hash, never the key)."""
    from app.security.api_keys import new_key

    key, entry = new_key(role, lifetime)  # type: ignore[arg-type]
    print(f"key (shown once; give it to the client): {key}")
    print(f"key id: {entry.key_id}")
    if entry.expires is not None:
        print(f"expires: {entry.expires.isoformat()}")
    print("add this entry to HP_API_KEYS (comma-separated) or as a line of HP_API_KEYS_FILE:")
    print(entry.entry())
    return 0


def audit_verify() -> int:
    """Check every audit chain of `HP_DATABASE_URL`: 0 and "OK" with counts, 1 and the first
    row altered, deleted or moved otherwise."""
    from app.store import db
    from app.store.audit_verify import verify

    settings = get_settings()
    engine = db.make_engine(settings.database_url)
    try:
        with db.make_sessionmaker(engine)() as session:
            report = verify(session, settings.audit_hmac_key.get_secret_value().encode())
    finally:
        engine.dispose()
    print(report.summary())
    for problem in report.problems[1:20]:
        print(f"  also: {problem.describe()}")
    return 0 if report.ok else 1


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    commands = top.add_subparsers(dest="command")
    audit = commands.add_parser("audit", help="the tamper-evident audit")
    audit.add_subparsers(dest="action", required=True).add_parser(
        "verify", help="check every audit chain; non-zero exit naming the first bad row"
    )
    keys = commands.add_parser("keys", help="managed API keys")
    new = keys.add_subparsers(dest="action", required=True).add_parser(
        "new", help="print a new key once and its hashed entry"
    )
    new.add_argument("--role", choices=("clinician", "admin"), required=True)
    new.add_argument("--expires", type=duration, default=None, help="e.g. 90d (default: never)")
    return top


def run(argv: list[str]) -> int:
    """Run one command; the exit status."""
    args = parser().parse_args(argv)
    if args.command == "audit":
        return audit_verify()
    return keys_new(args.role, args.expires)


if __name__ == "__main__":  # pragma: no cover - `python -m app` is the entry point
    sys.exit(run(sys.argv[1:]))
