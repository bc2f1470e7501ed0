"""Inbound mail from an IMAP folder (production).

Messages are identified by UIDVALIDITY:UID, read with BODY.PEEK[] (no \\Seen flag) and, once
the store has committed what they meant, moved to a "processed" folder. The caller persists
`state` (UIDVALIDITY and the highest UID below which everything is done) so a restart does
not rescan, and a changed UIDVALIDITY triggers a full rescan (the processor dedups by
Message-ID). Dropped connections are re-established with exponential backoff.
"""

from __future__ import annotations

import imaplib
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, TypeVar

from imapclient import DELETED, IMAPClient, SocketTimeout
from imapclient.exceptions import CapabilityError, LoginError

from inbox.sources.base import Incoming, SourceError
from mailkit.credentials import Credential, CredentialError, StaticPassword, login_with
from mailkit.servers import ImapServer, ServerSettingError
from mailkit.tls import TlsSetupError, tls_context

log = logging.getLogger(__name__)

FETCH_BATCH = 50
BACKOFF_FIRST = 1.0  # seconds; doubled after each failed attempt
BACKOFF_MAX = 60.0

T = TypeVar("T")


class ImapError(SourceError):
    """An IMAP failure, naming the server and the user (never the password)."""

    def __init__(self, settings: ImapServer, problem: str) -> None:
        if len(settings.password) >= 4:  # shorter ones would mangle ordinary words
            problem = problem.replace(settings.password, "***")
        self.host = settings.host
        self.port = settings.port
        self.user = settings.username
        super().__init__(f"IMAP {settings.username} at {settings.host}:{settings.port}: {problem}")


def backoff_delay(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based)."""
    return min(BACKOFF_FIRST * 2 ** (attempt - 1), BACKOFF_MAX)


class ImapSource:
    def __init__(
        self,
        settings: ImapServer,
        state: MutableMapping[str, Any],
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 5,
        connect_attempts: int | None = None,
        credential: Credential | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        if not settings.username:
            raise ServerSettingError("imap.username", f"expected the user name to log in to {settings.host}")
        self._settings = settings
        self._state = state
        self._sleep = sleep
        self._max_attempts = max_attempts
        self._connect_attempts = connect_attempts or max_attempts  # for connect()
        self._credential = credential or StaticPassword(settings.password)
        self._client: IMAPClient | None = None
        self._selected_uidvalidity: int | None = None
        self._known_folders: set[str] = set()
        # UIDs found by the latest scan, in order, and those since moved: the stored last_uid
        # only advances over a done prefix, so a message that failed is fetched again.
        self._outstanding: deque[int] = deque()
        self._pending: set[int] = set()  # the outstanding UIDs not yet done, for lookups
        self._done: set[int] = set()
        self._scan_max = 0
        self._selected_uidnext = 0

    # -- the Source protocol -----------------------------------------------------------------

    def fetch_new(self) -> Iterator[Incoming]:
        self._reselect()
        uids, uidvalidity = self._with_retry("search for new messages", self._search_new)
        self._outstanding = deque(uids)
        self._pending = set(uids)
        self._done = set()
        for start in range(0, len(uids), FETCH_BATCH):
            batch = uids[start : start + FETCH_BATCH]
            fetched, current = self._with_retry(
                f"fetch of {len(batch)} messages", lambda c, v, b=batch: (_fetch(c, b), v)
            )
            if current != uidvalidity:
                log.warning(
                    "IMAP %s: UIDVALIDITY changed during a fetch; the next fetch rescans",
                    self._settings.state_key,
                )
                return
            for uid in batch:
                raw = fetched.get(uid)
                if raw is None:  # expunged by another client meanwhile
                    continue
                yield Incoming(ref=f"{uidvalidity}:{uid}", raw=raw)

    def mark_processed(self, ref: str) -> None:
        self._move([ref], self._settings.processed_folder)

    def mark_processed_many(self, refs: list[str]) -> None:
        """``mark_processed`` for many messages with one UID MOVE (and one state save)."""
        self._move(refs, self._settings.processed_folder)

    def quarantine(self, ref: str) -> None:
        self._move([ref], self._settings.quarantine_folder)

    def forget(self, address: str) -> int:
        """The server searches (decoding MIME parts, as IMAP SEARCH TEXT does) and expunges."""

        def purge(client: IMAPClient, uidvalidity: int) -> int:
            removed = 0
            for folder in (self._settings.processed_folder, self._settings.quarantine_folder):
                if not client.folder_exists(folder):
                    continue
                client.select_folder(folder)
                uids = client.search(["TEXT", address])
                if uids:
                    client.add_flags(uids, [DELETED], silent=True)
                    if client.has_capability("UIDPLUS"):
                        client.uid_expunge(uids)
                    else:
                        client.expunge()
                removed += len(uids)
            return removed

        try:
            return self._with_retry("erasure of kept mail", purge)
        finally:
            self._reselect()  # purge left another folder selected

    def close(self) -> None:
        self._drop_connection(polite=True)

    def __enter__(self) -> ImapSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- state -------------------------------------------------------------------------------

    def _load_state(self) -> tuple[int | None, int]:
        entry = self._state.get(self._settings.state_key)
        if not isinstance(entry, dict):
            return None, 0
        uidvalidity, last_uid = entry.get("uidvalidity"), entry.get("last_uid", 0)
        if not isinstance(uidvalidity, int) or not isinstance(last_uid, int) or last_uid < 0:
            log.warning("IMAP %s: unusable saved state, rescanning", self._settings.state_key)
            return None, 0
        return uidvalidity, last_uid

    def _save_state(self, uidvalidity: int, last_uid: int) -> None:
        # A fresh dict each time: the caller may persist on assignment only.
        self._state[self._settings.state_key] = {"uidvalidity": uidvalidity, "last_uid": last_uid}

    def _mark_done(self, uids: list[int]) -> None:
        for uid in uids:
            if uid in self._pending:  # else from an older scan: nothing to advance
                self._pending.discard(uid)
                self._done.add(uid)
        while self._outstanding and self._outstanding[0] in self._done:
            self._done.discard(self._outstanding.popleft())
        # UIDs only grow, so every UID below the first outstanding one that the scan did not
        # find had already left the folder: the stored mark may pass over it.
        done_up_to = self._outstanding[0] - 1 if self._outstanding else self._scan_max
        if self._selected_uidvalidity is not None:
            stored_uidvalidity, last_uid = self._load_state()
            if stored_uidvalidity == self._selected_uidvalidity and done_up_to > last_uid:
                self._save_state(stored_uidvalidity, done_up_to)

    # -- operations (run inside _with_retry) -------------------------------------------------

    def _search_new(self, client: IMAPClient, uidvalidity: int) -> tuple[list[int], int]:
        _, last_uid = self._load_state()
        # "N:*" always matches the highest UID, even when it is below N.
        found = client.search(["UID", f"{last_uid + 1}:*"])
        uids = sorted(uid for uid in found if uid > last_uid)
        # Every UID below UIDNEXT (as of SELECT, before this search) that the search did not
        # find has left the folder; once all found ones are done the mark may pass them.
        self._scan_max = max(uids[-1] if uids else 0, self._selected_uidnext - 1)
        return uids, uidvalidity

    def _move(self, refs: list[str], folder: str) -> None:
        parsed = [_parse_ref(ref) for ref in refs]  # all checked before anything moves
        if not parsed:
            return
        self._reselect()

        def move(client: IMAPClient, uidvalidity: int) -> list[int]:
            # UIDs of another UIDVALIDITY name other messages now: moving would hit the wrong
            # ones. The rescan returns those messages under new refs.
            stale = [ref for ref, (v, _) in zip(refs, parsed, strict=True) if v != uidvalidity]
            if stale:
                log.warning(
                    "IMAP %s: not moving %s, the folder's UIDVALIDITY is now %s",
                    self._settings.state_key,
                    ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else ""),
                    uidvalidity,
                )
            uids = [uid for v, uid in parsed if v == uidvalidity]
            if not uids:
                return []
            self._ensure_folder(client, folder)
            if self._supports_move(client):
                client.move(uids, folder)
            else:
                client.copy(uids, folder)
                client.add_flags(uids, [DELETED], silent=True)
                if client.has_capability("UIDPLUS"):
                    client.uid_expunge(uids)
                else:  # without UIDPLUS only a full EXPUNGE exists
                    client.expunge()
            return uids

        what = f"move of message {refs[0]}" if len(refs) == 1 else f"move of {len(refs)} messages"
        moved = self._with_retry(f"{what} to {folder!r}", move)
        if moved:
            self._mark_done(moved)

    def _supports_move(self, client: IMAPClient) -> bool:
        return client.has_capability("MOVE")

    def _ensure_folder(self, client: IMAPClient, folder: str) -> None:
        if folder in self._known_folders:
            return
        if not client.folder_exists(folder):
            try:
                client.create_folder(folder)
            except imaplib.IMAP4.error:
                if not client.folder_exists(folder):  # not just created by another client
                    raise
            else:
                try:
                    client.subscribe_folder(folder)  # so mail clients show it
                except imaplib.IMAP4.error as exc:
                    log.info("IMAP %s: cannot subscribe %r: %s", self._settings.host, folder, exc)
        self._known_folders.add(folder)

    # -- connection --------------------------------------------------------------------------

    def connect(self) -> None:
        """Log in now (or check that the open connection still answers), reconnecting with backoff.

        The service calls this before it opens the database, so the waits between attempts never keep
        the organiser's commands waiting; the pass itself then runs on a live connection.
        """
        if self._client is not None:
            try:
                self._client.noop()
                return
            except (imaplib.IMAP4.error, OSError):
                self._drop_connection()
        self._retrying("connection", self._ensure_connected, self._connect_attempts)

    def _with_retry(self, what: str, operation: Callable[[IMAPClient, int], T]) -> T:
        """Run `operation(client, uidvalidity)` on a live, selected connection (see ``_retrying``)."""
        return self._retrying(what, lambda: operation(*self._ensure_selected()), self._max_attempts)

    def _retrying(self, what: str, step: Callable[[], T], attempts: int) -> T:
        """Run ``step``; network failures reconnect with exponential backoff, up to ``attempts`` tries;
        failures that a retry cannot fix (login refused, certificate rejected, command refused) raise
        ImapError at once, naming the fix where there is one."""
        settings = self._settings
        dropped_once = False
        attempt = 1
        while attempt <= attempts:
            try:
                return step()
            except ssl.SSLCertVerificationError as exc:
                self._drop_connection()
                raise ImapError(
                    settings,
                    f"TLS certificate verify failed ({exc.verify_message}): set [imap] ca_file to the CA "
                    "that signed the server's certificate",
                ) from None
            except LoginError as exc:
                self._drop_connection()
                # Not chained: the traceback would repeat the server's text unscrubbed.
                raise ImapError(
                    settings, f"login refused ({_text(exc)}): {_login_fix(settings.mechanism)}"
                ) from None
            except CapabilityError as exc:
                self._drop_connection()
                raise ImapError(settings, f"{what}: {_text(exc)}") from exc
            except (imaplib.IMAP4.abort, OSError) as exc:
                self._drop_connection()
                if isinstance(exc, imaplib.IMAP4.abort) and not dropped_once:
                    # The server closed a connection that was working (idle timeout, restart, "shutting
                    # down"): log in again at once, without counting it as a failed attempt.
                    dropped_once = True
                    log.info("IMAP %s at %s:%d: %s", settings.username, settings.host, settings.port, exc)
                    continue
                if attempt >= attempts:
                    raise ImapError(
                        settings, f"{what} failed after {attempt} attempts: {_describe(exc)}"
                    ) from exc
                delay = backoff_delay(attempt)
                log.warning(
                    "IMAP %s at %s:%d: %s failed (%s); reconnecting in %.0f s (attempt %d of %d)",
                    settings.username,
                    settings.host,
                    settings.port,
                    what,
                    _describe(exc),
                    delay,
                    attempt + 1,
                    attempts,
                )
                self._sleep(delay)
                attempt += 1
            except imaplib.IMAP4.error as exc:  # the server answered NO or BAD
                raise ImapError(settings, f"{what} refused: {_text(exc)}") from exc
        raise AssertionError("unreachable: the loop returns or raises")

    def _reselect(self) -> None:
        """SELECT the folder again on the next operation, even on a connection kept open.

        A session keeps the folder it selected: if the folder was deleted and made again meanwhile (a new
        UIDVALIDITY), Dovecot runs SEARCH and UID MOVE against the new folder while the old session's state
        is stale, so a move could file a message that was never applied. SELECT tells us the folder's
        UIDVALIDITY now (and, unlike NOOP, reliably shows mail delivered since the last poll).
        """
        self._selected_uidvalidity = None

    def _ensure_connected(self) -> IMAPClient:
        if self._client is None:
            self._client = self._connect()
            self._selected_uidvalidity = None
            self._known_folders = set()
        return self._client

    def _ensure_selected(self) -> tuple[IMAPClient, int]:
        self._ensure_connected()
        assert self._client is not None
        if self._selected_uidvalidity is None:
            try:
                info = self._client.select_folder(self._settings.folder)
            except imaplib.IMAP4.abort:
                raise
            except imaplib.IMAP4.error as exc:
                raise ImapError(
                    self._settings, f"cannot open folder {self._settings.folder!r}: {_text(exc)}"
                ) from exc
            uidvalidity = int(info[b"UIDVALIDITY"])
            self._selected_uidnext = int(info.get(b"UIDNEXT", 0))
            stored, _ = self._load_state()
            if stored != uidvalidity:
                if stored is not None:
                    log.warning(
                        "IMAP %s: UIDVALIDITY changed from %s to %s; rescanning the folder",
                        self._settings.state_key,
                        stored,
                        uidvalidity,
                    )
                self._save_state(uidvalidity, 0)
                self._outstanding.clear()
                self._pending.clear()
                self._done.clear()
                self._scan_max = 0
            self._selected_uidvalidity = uidvalidity
        return self._client, self._selected_uidvalidity

    def _connect(self) -> IMAPClient:
        settings = self._settings
        context = self._tls_context() if settings.security != "none" else None
        client = IMAPClient(
            settings.host,
            port=settings.port,
            ssl=settings.security == "ssl",
            ssl_context=context,
            timeout=SocketTimeout(connect=settings.timeout, read=settings.timeout),
        )
        try:
            if settings.security == "starttls":
                client.starttls(context)
            if settings.mechanism == "xoauth2":
                login_with(self._credential, lambda t: client.oauth2_login(settings.username, t), LoginError)
            else:
                login_with(self._credential, lambda p: client.login(settings.username, p), LoginError)
        except CredentialError as exc:
            _shutdown(client)
            raise ImapError(settings, str(exc)) from None
        except BaseException:
            _shutdown(client)
            raise
        log.info(
            "IMAP %s connected to %s:%d (%s)",
            settings.username,
            settings.host,
            settings.port,
            settings.security,
        )
        return client

    def _tls_context(self) -> ssl.SSLContext:
        try:
            return tls_context(self._settings.ca_file)
        except TlsSetupError as exc:
            raise ImapError(self._settings, str(exc)) from None

    def _drop_connection(self, *, polite: bool = False) -> None:
        client, self._client = self._client, None
        self._selected_uidvalidity = None
        if client is None:
            return
        if polite:
            try:
                client.logout()
                return
            except (imaplib.IMAP4.error, OSError):
                pass
        _shutdown(client)


def _fetch(client: IMAPClient, uids: list[int]) -> dict[int, bytes]:
    response = client.fetch(uids, ["BODY.PEEK[]"])
    return {
        uid: bytes(data[b"BODY[]"])
        for uid, data in response.items()
        if isinstance(data.get(b"BODY[]"), bytes | bytearray)
    }


def _parse_ref(ref: str) -> tuple[int, int]:
    uidvalidity, sep, uid = ref.partition(":")
    if not (sep and uidvalidity.isdigit() and uid.isdigit()):
        raise ValueError(f"not an IMAP reference (UIDVALIDITY:UID): {ref!r}")
    return int(uidvalidity), int(uid)


def _shutdown(client: IMAPClient) -> None:
    try:
        client.shutdown()
    except (imaplib.IMAP4.error, OSError):
        pass


def _text(exc: BaseException) -> str:
    message = exc.args[0] if exc.args else exc
    if isinstance(message, bytes):
        return message.decode("utf-8", "replace")
    text = str(message)
    # imapclient wraps some server replies as str(bytes): "b'[AUTHENTICATIONFAILED] ...'"
    if len(text) >= 3 and text[0] == "b" and text[1] in "'\"" and text[-1] == text[1]:
        text = text[2:-1]
    return text


def _login_fix(auth: str) -> str:
    if auth == "xoauth2":
        return "run `unmentoring auth login` again"
    return "check the password ([imap] password_env or password_command) and username"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:  # "Connection refused", not "ConnectionRefusedError: 111"
        return exc.strerror
    detail = _text(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
