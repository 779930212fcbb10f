"""Text accepted from clients: no control characters (NUL, escape, ...) in any text field.

PostgreSQL refuses a NUL inside a string and a log line or CSV export should never carry control
codes; they are refused at validation (422 naming the field) before anything is stored. Tab,
line feed and carriage return stay allowed in free text.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def no_control_characters(value: str) -> str:
    """``value`` unchanged; `ValueError` when it holds a control character other than tab and
    line breaks."""
    found = _CONTROL.search(value)
    if found:
        raise ValueError(
            f"control character U+{ord(found.group()):04X} at position {found.start()} "
            "is not accepted"
        )
    return value


Text = Annotated[str, AfterValidator(no_control_characters)]
"""A `str` field that refuses control characters (tab and line breaks allowed)."""
