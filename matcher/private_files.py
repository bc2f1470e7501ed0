"""Files that hold tokens or personal data: readable by the service's own user only, whatever the umask.

The data folder and every folder under it is 0700, every file 0600: the database and its backups, the
outbox spool and journal, the Maildirs (the programme's inbox, its processed mail and quarantine, the
sandbox's mailboxes), the OAuth2 token file. Each writer creates its files with these modes
(``os.open(..., PRIVATE_FILE)``, ``private_folder``); ``tighten`` fixes what an older version, a copy or a
restore left wider, once at start.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600
_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def private_folder(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700; an existing folder is narrowed to 0700."""
    path.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) & _OTHERS:
        path.chmod(PRIVATE_FOLDER)
    return path


def create_private(path: Path | str, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC) -> int:
    """``os.open`` a file for writing as 0600 (an existing file keeps its mode: ``tighten`` fixes it)."""
    return os.open(path, flags, PRIVATE_FILE)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (replacing it) as a 0600 file."""
    fd = create_private(path)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def tighten(folder: Path, log: logging.Logger) -> int:
    """Narrow every folder under ``folder`` (itself included) to 0700 and every file to 0600 where group or
    others had any access; returns how many were changed (one log line names the count).

    Symbolic links are left alone (their target may be anything, e.g. a shared CA file)."""
    if not folder.exists():
        return 0
    changed = 0
    for path in [folder, *folder.rglob("*")]:
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue  # removed meanwhile (a temp file)
        if stat.S_ISLNK(info.st_mode) or not stat.S_IMODE(info.st_mode) & _OTHERS:
            continue
        path.chmod(PRIVATE_FOLDER if stat.S_ISDIR(info.st_mode) else PRIVATE_FILE)
        changed += 1
    holds_data = any(path.name != ".gitkeep" for path in folder.iterdir())
    if changed > 1 or (changed and holds_data):
        log.warning("data folder %s: %d file(s)/folder(s) readable by others; now private", folder, changed)
    elif changed:  # only the empty folder itself (as a fresh checkout makes it): nothing was exposed
        log.info("data folder %s made private (0700)", folder)
    return changed
