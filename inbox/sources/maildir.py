"""Inbound mail from a local Maildir (the sandbox, or an MTA delivering to disk).

Processed and quarantined messages are renamed into sub-folders (".Processed", ".Quarantine")
of the same Maildir: a rename is atomic, so a message is always in exactly one place.
"""

from __future__ import annotations

import mailbox
import os
from collections.abc import Iterator
from pathlib import Path

from inbox.sources.base import Incoming, SourceError
from inbox.sources.kept import names_address
from mailkit.maildir import SUBDIRS, MaildirFile, delivered


class MaildirError(SourceError):
    """A Maildir operation failed; the message names the Maildir and the key."""


class MaildirSource:
    def __init__(
        self,
        path: Path,
        *,
        processed_folder: str = "Processed",
        quarantine_folder: str = "Quarantine",
    ) -> None:
        for name in (processed_folder, quarantine_folder):
            _check_folder_name(name)
        if processed_folder == quarantine_folder:
            raise ValueError("the processed and quarantine folders must differ")
        self.path = Path(path)
        try:
            # mailbox.Maildir(create=True) skips tmp/new/cur when the directory already exists.
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)  # mail is personal data: owner only
            for sub in SUBDIRS:
                (self.path / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
            self._maildir = mailbox.Maildir(self.path, factory=None, create=True)
        except OSError as exc:
            raise MaildirError(f"cannot open or create Maildir {self.path}: {exc}") from exc
        self._colon = self._maildir.colon
        self._folder_names = {"processed": processed_folder, "quarantine": quarantine_folder}
        self._folders: dict[str, Path] = {}
        self._known: dict[str, Path] = {}  # key -> file, from the latest scan

    # -- reading -----------------------------------------------------------------------------

    def fetch_new(self) -> Iterator[Incoming]:
        """Messages in new/ and cur/ of the top folder, oldest delivery first.

        The listing is taken when iteration starts; mail delivered meanwhile is returned by
        the next call.
        """
        entries = self._scan()
        for entry in entries:
            raw = self._read(entry)
            if raw is not None:
                yield Incoming(ref=entry.key, raw=raw)

    def _scan(self) -> list[MaildirFile]:
        try:
            entries = delivered(self.path, colon=self._colon)
        except OSError as exc:
            raise MaildirError(f"cannot list {self.path}: {exc}") from exc
        self._known = {e.key: e.path for e in entries}
        return entries

    def _read(self, entry: MaildirFile) -> bytes | None:
        path: Path | None = entry.path
        # Another reader may have moved it from new/ to cur/ (renaming it) since the scan.
        for _ in range(2):
            if path is None:
                return None
            try:
                return path.read_bytes()
            except FileNotFoundError:
                path = self._locate(entry.key, self.path, use_cache=False)
            except OSError as exc:
                raise MaildirError(f"cannot read message {entry.key} in {self.path}: {exc}") from exc
        return None

    # -- moving ------------------------------------------------------------------------------

    def mark_processed(self, ref: str) -> None:
        self._move(ref, "processed")

    def quarantine(self, ref: str) -> None:
        self._move(ref, "quarantine")

    def _move(self, key: str, purpose: str) -> None:
        _check_key(key)
        target = self._folder(purpose)
        source = self._locate(key, self.path)
        if source is None:
            if self._locate(key, target, use_cache=False) is not None:
                return  # already moved (a retry after a crash between move and commit)
            raise MaildirError(f"no message {key!r} in {self.path} to move to {target.name}")
        info = source.name[len(key) :] or f"{self._colon}2,"  # files in cur/ carry an info part
        try:
            os.rename(source, target / "cur" / f"{key}{info}")
        except OSError as exc:
            raise MaildirError(f"cannot move message {key!r} from {self.path} to {target}: {exc}") from exc
        self._known.pop(key, None)

    def _folder(self, purpose: str) -> Path:
        path = self._folders.get(purpose)
        if path is None:
            name = self._folder_names[purpose]
            try:
                self._maildir.add_folder(name)  # creates .Name/{tmp,new,cur} when missing
                # ... and an empty "maildirfolder" marker file that the umask leaves readable to others
                (self.path / f".{name}" / "maildirfolder").chmod(0o600)
            except OSError as exc:
                raise MaildirError(f"cannot create folder {name!r} in {self.path}: {exc}") from exc
            path = self.path / f".{name}"
            self._folders[purpose] = path
        return path

    def _locate(self, key: str, maildir: Path, *, use_cache: bool = True) -> Path | None:
        """The current file of `key` in `maildir` (new/ or cur/, any info suffix), or None."""
        if use_cache and maildir == self.path:
            cached = self._known.get(key)
            if cached is not None and cached.exists():
                return cached
        candidate = maildir / "new" / key
        if candidate.exists():
            return candidate
        prefix = key + self._colon
        for sub in ("cur", "new"):
            try:
                names = os.listdir(maildir / sub)
            except FileNotFoundError:
                continue
            for name in names:
                if name == key or name.startswith(prefix):
                    return maildir / sub / name
        return None

    def forget(self, address: str) -> int:
        removed = 0
        for name in self._folder_names.values():
            for entry in delivered(self.path / f".{name}", colon=self._colon, missing_ok=True):
                try:
                    if names_address(entry.path.read_bytes(), address):
                        entry.path.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise MaildirError(f"cannot erase message {entry.key} in {self.path}: {exc}") from exc
        return removed

    def close(self) -> None:
        self._known.clear()


def _check_folder_name(name: str) -> None:
    if not name or "/" in name or name.startswith(".") or name in SUBDIRS or "\0" in name:
        raise ValueError(f"unusable Maildir folder name {name!r}")


def _check_key(key: str) -> None:
    if not key or "/" in key or key.startswith(".") or "\0" in key:
        raise MaildirError(f"not a Maildir message key: {key!r}")
