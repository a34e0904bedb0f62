"""Store file names and paths as database text that turns back into the same bytes.

POSIX file names are bytes. `os.fsdecode` turns bytes that are not valid UTF-8 into lone
surrogates (U+DC80..U+DCFF), which neither SQLite's UTF-8 text nor PostgreSQL accepts, and
PostgreSQL also rejects NUL. The stored form is therefore:

- the name itself when it is valid UTF-8, has no NUL and does not start with `ESCAPE_PREFIX`
  (nearly every name, so the database stays readable and searchable);
- otherwise `ESCAPE_PREFIX` followed by the percent-encoded bytes of `os.fsencode(name)`.

Decoding a stored value reverses this exactly, so `decode(encode(name)) == name` for every str
that `os.fsdecode` can return.
"""

from __future__ import annotations

import os
from urllib.parse import quote_from_bytes, unquote_to_bytes

ESCAPE_PREFIX = "fsbytes:"

# Characters kept literal inside the escaped form, so a reader can still recognise the name.
_SAFE = "/._-~ "


def encode_path(name: str | os.PathLike[str]) -> str:
    """Return the text to store for a file name or path."""
    text = os.fspath(name)
    if _is_plain(text):
        return text
    return ESCAPE_PREFIX + quote_from_bytes(os.fsencode(text), safe=_SAFE)


def decode_path(stored: str) -> str:
    """Return the file name or path that `encode_path` stored, as `os.fsdecode` would give it."""
    if not stored.startswith(ESCAPE_PREFIX):
        return stored
    return os.fsdecode(unquote_to_bytes(stored[len(ESCAPE_PREFIX) :]))


def _is_plain(text: str) -> bool:
    if text.startswith(ESCAPE_PREFIX) or "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
