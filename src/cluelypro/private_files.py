"""Files that hold speech, transcripts or voiceprints are the user's alone: they are created
owner-only (0600) from their first byte, whatever the umask — never chmod-ed after writing.

On Windows the mode bits do not apply; such files get the folder's access rules.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO

PRIVATE_MODE = 0o600


def open_private(path: Path, mode: str = "w") -> IO:
    """`path` opened for writing ("w" text in UTF-8, or "wb"), created 0600 with its folder; an
    existing file is emptied and made 0600 before anything is written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), PRIVATE_MODE)
    if hasattr(os, "fchmod"):  # the mode given to os.open applies only to a new file
        os.fchmod(descriptor, PRIVATE_MODE)
    return os.fdopen(descriptor, mode, encoding=None if "b" in mode else "utf-8")


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step (a 0600 temporary file in the same folder, then
    os.replace): a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".partial")  # 0600
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
