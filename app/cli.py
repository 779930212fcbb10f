"""`python -m app audit verify` and `python -m app keys new`: the operator's commands
(`python -m app` with no command serves, see `app.__main__`)."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.settings import get_settings

UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"^(\d+)([mhdw])$")


def duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``2w`` as a timedelta."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError("a duration like 90d, 12h, 30m or 2w")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


def utc_time(text: str) -> datetime:
    """An ISO 8601 time; UTC when it has no offset."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("an ISO 8601 time like 2026-12-01T09:00") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


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


def audit_verify(head_logs: list[Path], chained_since: datetime | None = None) -> int:
    """Check every audit chain of `HP_DATABASE_URL` (and that it reaches every chain head logged
    in ``head_logs``): 0 and "OK" with counts, 1 and the first row altered, deleted or moved
    otherwise."""
    from app.store import db
    from app.store.audit_verify import read_heads, verify

    settings = get_settings()
    heads = None
    if head_logs:
        heads = read_heads(
            line for path in head_logs for line in path.read_text(errors="replace").splitlines()
        )
        print(f"audit verify: {len(heads)} chain head(s) read from {len(head_logs)} log file(s)")
    engine = db.make_engine(settings.database_url)
    try:
        with db.make_sessionmaker(engine)() as session:
            key = settings.audit_hmac_key.get_secret_value().encode()
            report = verify(session, key, heads, chained_since)
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
    check = audit.add_subparsers(dest="action", required=True).add_parser(
        "verify", help="check every audit chain; non-zero exit naming the first bad row"
    )
    check.add_argument(
        "--heads",
        type=Path,
        nargs="+",
        default=[],
        metavar="LOG",
        help="the service's JSON logs: every 'audit chain head' they hold must be in the store "
        "(detects rows deleted at a chain's end, and deleted chains)",
    )
    check.add_argument(
        "--chained-since",
        type=utc_time,
        default=None,
        metavar="TIME",
        help="when the store was migrated to 0002 (ISO 8601, UTC if no offset): rows without a "
        "MAC created before it are counted as pre-chain, not reported as unchained",
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
        return audit_verify(args.heads, args.chained_since)
    return keys_new(args.role, args.expires)


if __name__ == "__main__":  # pragma: no cover - `python -m app` is the entry point
    sys.exit(run(sys.argv[1:]))
