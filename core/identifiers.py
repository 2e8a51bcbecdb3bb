"""The one form of every identifier (companies, requests, jobs, tools, sessions...).

Identifiers end up in record keys, folder names, URLs and SQL filters, so they are kept to a form that
is safe in all of them: a letter or digit first, then letters, digits, `_`, `.` and `-`, at most 128
characters. `..`, `/`, spaces and control characters can never appear.
"""

from __future__ import annotations

import re
from functools import lru_cache

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_ID = re.compile(ID_PATTERN.removeprefix("^").removesuffix("$"))  # fullmatch: `$` would let a final newline in


@lru_cache(maxsize=65_536)
def _is_identifier(value: str) -> bool:
    return _ID.fullmatch(value) is not None and ".." not in value


def is_identifier(value: object) -> bool:
    """Checked on every event read: the same few company, job and tool ids recur, so answers are memoised."""
    return isinstance(value, str) and len(value) <= 128 and _is_identifier(value)
