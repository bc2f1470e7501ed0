"""Real mail servers for the test suite: a private Dovecot (IMAP) and an aiosmtpd sink (SMTP).

Usable from pytest (see conftest.py) and from plain scripts such as the benchmarks:

    sink = SmtpSink(store=False).start()
    ...
    sink.stop()

Nothing here touches a system-wide daemon: every process is started by this module, on
127.0.0.1, on ports picked at run time, and stopped by the pid this module holds.
"""

from __future__ import annotations

import base64
import imaplib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"
MAIL_SYSTEM_USER = "unmentoring-mail"
START_TIMEOUT = 15.0
LOG_TAIL_CHARS = 6000


class ServerStartError(RuntimeError):
    """A test server could not be started; the message carries its log."""


def free_port(host: str = HOST) -> int:
    """A TCP port that was free a moment ago (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until_listening(host: str, port: int, deadline: float) -> bool:
    """Poll until something accepts TCP connections on host:port, or the deadline passes."""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def _tail(path: Path, limit: int = LOG_TAIL_CHARS) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return text[-limit:] if text else "<empty>"


# --------------------------------------------------------------------------------------------
# TLS: a throwaway CA and a server certificate for 127.0.0.1 / localhost, made with openssl


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path  # give this to clients as their CA file
    cert: Path  # server certificate (signed by the CA)
    key: Path  # server private key

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only the test CA."""
        return ssl.create_default_context(cafile=str(self.ca_cert))


def _openssl(args: list[str], cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise ServerStartError(f"openssl {args[0]} failed in {cwd}:\n{result.stderr}")


def make_tls_files(directory: Path) -> TlsFiles:
    """Create a CA and a server certificate (CN 127.0.0.1, SAN IP:127.0.0.1 and DNS:localhost).

    Files are world-readable on purpose: Dovecot reads them from a directory outside root's
    home, and the key protects nothing but a test server.
    """
    directory.mkdir(parents=True, exist_ok=True)
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        [
            "req",
            "-x509",
            *curve,
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "30",
            "-subj",
            "/CN=UnMentoring test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        directory,
    )
    _openssl(
        ["req", "-new", *curve, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
        directory,
    )
    (directory / "server.ext").write_text(
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid, issuer\n"
    )
    _openssl(
        [
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "30",
            "-extfile",
            "server.ext",
        ],
        directory,
    )
    for name in ("ca.crt", "server.crt", "server.key"):
        (directory / name).chmod(0o644)
    return TlsFiles(directory / "ca.crt", directory / "server.crt", directory / "server.key")


def make_server_dir(prefix: str) -> Path:
    """A fresh directory that Dovecot's unprivileged processes can traverse.

    pytest's tmp_path lives under a 0700 directory, and Dovecot's unix sockets need short
    paths (108 bytes), hence mkdtemp in the system temp dir.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


# --------------------------------------------------------------------------------------------
# Dovecot


def ensure_system_user(name: str = MAIL_SYSTEM_USER) -> pwd.struct_passwd:
    """The unprivileged account that owns the test maildirs (created once per machine)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    result = subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ServerStartError(
            f"cannot create system user {name!r} for the test maildirs "
            f"(useradd exit {result.returncode}): {result.stderr.strip()}"
        ) from None


_DOVECOT_CONF = """\
# Private test instance; every path lives under {dir}.
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
listen = {host}
protocols = imap
shutdown_clients = yes

ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2
# The default 2 s delay after a failed login only slows the tests down.
auth_failure_delay = 0

mail_location = maildir:~/Maildir
# Throwaway mail: durability buys nothing here and fsync makes every APPEND ~15 ms.
mail_fsync = never
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}

namespace inbox {{
  inbox = yes
}}

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {dir}/passwd.d/%n
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/mail/%n
}}

# Failed logins in one test must not slow down logins from 127.0.0.1 in the next ones.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = {host}
    port = {imaps_port}
    ssl = yes
  }}
}}
"""


# With a TokenServer: XOAUTH2/OAUTHBEARER logins are checked by its introspection endpoint, every time.
_DOVECOT_OAUTH2_CONF = """
auth_mechanisms = plain login xoauth2 oauthbearer
# Each login must reach the token server: a cached answer would hide an expired token.
auth_cache_size = 0
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {dir}/oauth2.conf.ext
}}
"""
_DOVECOT_OAUTH2_EXT = """\
introspection_mode = post
introspection_url = {introspection_url}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
"""


class Dovecot:
    """A private Dovecot 2.3 instance on 127.0.0.1: plain IMAP with STARTTLS, and IMAPS."""

    def __init__(
        self, tls: TlsFiles | None = None, *, host: str = HOST, oauth2_introspection_url: str = ""
    ) -> None:
        self.host = host
        self.oauth2_introspection_url = oauth2_introspection_url
        self.dir = make_server_dir("umdc-")
        self.tls = tls or make_tls_files(self.dir / "tls")
        self.imap_port = free_port(host)
        self.imaps_port = free_port(host)
        self.config = self.dir / "dovecot.conf"
        self.log_file = self.dir / "dovecot.log"
        self._passwords: dict[str, str] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._frozen = False
        self._write_config()

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def ca_file(self) -> str:
        return str(self.tls.ca_cert)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _write_config(self) -> None:
        mail_user = ensure_system_user()
        for sub in ("run", "state", "passwd.d", "mail"):
            (self.dir / sub).mkdir(exist_ok=True)
            (self.dir / sub).chmod(0o755)
        os.chown(self.dir / "mail", mail_user.pw_uid, mail_user.pw_gid)
        self.config.write_text(
            _DOVECOT_CONF.format(
                dir=self.dir,
                host=self.host,
                cert=self.tls.cert,
                key=self.tls.key,
                uid=mail_user.pw_uid,
                gid=mail_user.pw_gid,
                imap_port=self.imap_port,
                imaps_port=self.imaps_port,
            )
            + (_DOVECOT_OAUTH2_CONF.format(dir=self.dir) if self.oauth2_introspection_url else "")
        )
        if self.oauth2_introspection_url:
            (self.dir / "oauth2.conf.ext").write_text(
                _DOVECOT_OAUTH2_EXT.format(introspection_url=self.oauth2_introspection_url)
            )

    def start(self) -> Dovecot:
        """Start (or, if frozen, thaw) the instance; a failure raises ServerStartError."""
        if self.running:
            self.unfreeze()
            return self
        stdio = open(self.dir / "dovecot.stdio", "ab")
        try:
            # Dovecot's master keeps its stdio open for its lifetime: pipes would never close.
            self._process = subprocess.Popen(
                ["dovecot", "-F", "-c", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=stdio,
                stderr=stdio,
                start_new_session=True,
            )
        except OSError as exc:
            raise ServerStartError(f"cannot run dovecot: {exc}") from exc
        finally:
            stdio.close()
        deadline = time.monotonic() + START_TIMEOUT
        for port in (self.imap_port, self.imaps_port):
            if not self._wait_for_greeting(port, deadline):
                self.stop()
                raise ServerStartError(
                    f"Dovecot did not answer on {self.host}:{port} within {START_TIMEOUT} s "
                    f"(config {self.config}).\n--- dovecot.stdio ---\n"
                    f"{_tail(self.dir / 'dovecot.stdio')}\n--- dovecot.log ---\n"
                    f"{_tail(self.log_file)}"
                )
        return self

    def _wait_for_greeting(self, port: int, deadline: float) -> bool:
        while time.monotonic() < deadline and self.running:
            try:
                # Short timeout: a squatter on the port may accept and never greet.
                with socket.create_connection((self.host, port), timeout=0.25) as sock:
                    if port == self.imaps_port:
                        wrapped = self.tls.client_context().wrap_socket(sock, server_hostname=self.host)
                        return wrapped.recv(64).startswith(b"* OK")
                    return sock.recv(64).startswith(b"* OK")
            except OSError:
                time.sleep(0.02)
        return False

    def stop(self) -> None:
        """Stop every process of this instance (and only those).

        Dovecot runs in its own session, so its process group holds exactly the processes it
        forked; the master alone leaves its children (imap, imap-login, ...) running with
        their client connections open, so the whole group is signalled.
        """
        process, self._process = self._process, None
        if process is None:
            return
        group = process.pid
        _signal_group(group, signal.SIGTERM)
        if self._frozen:  # stopped processes act on SIGTERM only once continued
            _signal_group(group, signal.SIGCONT)
            self._frozen = False
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if not _wait_group_gone(group, time.monotonic() + 5):
            _signal_group(group, signal.SIGKILL)
            _wait_group_gone(group, time.monotonic() + 5)

    def restart(self) -> None:
        """Stop and start again on the same ports: every client connection is dropped."""
        self.stop()
        self.start()

    def freeze(self) -> None:
        """Suspend every process of the instance (SIGSTOP): connections stay open, nothing
        answers. For read-timeout tests; always pair with unfreeze()."""
        if self._process is not None and self.running:
            _signal_group(self._process.pid, signal.SIGSTOP)
            self._frozen = True

    def unfreeze(self) -> None:
        if self._frozen and self._process is not None:
            _signal_group(self._process.pid, signal.SIGCONT)
        self._frozen = False

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self) -> str:
        return _tail(self.log_file)

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()

    # -- users and mail ----------------------------------------------------------------------

    def add_user(self, name: str, password: str) -> None:
        if not name or any(c in name for c in "/:@ \t\n") or ":" in password or "\n" in password:
            raise ValueError(f"unusable test user name or password for user {name!r}")
        entry = self.dir / "passwd.d" / name
        tmp = entry.with_suffix(".tmp")
        tmp.write_text(f"{name}:{password}\n")
        tmp.chmod(0o644)
        tmp.replace(entry)
        self._passwords[name] = password

    def password(self, user: str) -> str:
        return self._passwords[user]

    def doveadm(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["doveadm", "-c", str(self.config), *args],
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
        )
        return result

    def _doveadm_checked(self, *args: str, input: bytes | None = None) -> None:
        result = self.doveadm(*args, input=input)
        if result.returncode != 0:
            raise RuntimeError(
                f"doveadm {args[0]} failed (exit {result.returncode}): "
                f"{result.stderr.decode(errors='replace').strip()}"
            )

    def create_folder(self, user: str, folder: str) -> None:
        result = self.doveadm("mailbox", "create", "-u", user, folder)
        if result.returncode != 0 and b"exists" not in result.stderr:
            raise RuntimeError(
                f"doveadm mailbox create {folder!r} for {user} failed: "
                f"{result.stderr.decode(errors='replace').strip()}"
            )

    def delete_folder(self, user: str, folder: str) -> None:
        self._doveadm_checked("mailbox", "delete", "-u", user, "-s", folder)

    def deliver(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        """Store a message in the user's folder, as a local delivery agent would."""
        if folder.upper() != "INBOX":
            self.create_folder(user, folder)
        self._doveadm_checked("save", "-u", user, "-m", folder, input=raw)

    def deliver_many(self, user: str, raws: list[bytes], folder: str = "INBOX") -> None:
        """Append several messages over one IMAP session (faster than one doveadm per mail)."""
        if folder.upper() != "INBOX":
            self.create_folder(user, folder)
        with self._session(user) as client:
            for raw in raws:
                typ, data = client.append(_imap_quote(folder), "", None, raw)
                if typ != "OK":
                    raise RuntimeError(f"APPEND to {folder!r} of {user} failed: {data!r}")

    def kick(self, user: str) -> None:
        """Drop every IMAP connection of a user (the server says BYE and closes)."""
        self.doveadm("kick", user)

    @contextmanager
    def _session(self, user: str) -> Iterator[imaplib.IMAP4]:
        client = imaplib.IMAP4(self.host, self.imap_port, timeout=10)
        try:
            client.login(user, self._passwords[user])
            yield client
        finally:
            try:
                client.logout()
            except (OSError, imaplib.IMAP4.error):
                client.shutdown()

    def _fetch_all(self, user: str, folder: str, item: str) -> list[bytes]:
        with self._session(user) as client:
            typ, data = client.select(_imap_quote(folder), readonly=True)
            if typ != "OK":
                raise RuntimeError(f"cannot select {folder!r} of {user}: {data!r}")
            typ, data = client.uid("FETCH", "1:*", f"({item})") if int(data[0]) else ("OK", [])
            if typ != "OK":
                raise RuntimeError(f"cannot fetch {folder!r} of {user}: {data!r}")
            return [part for part in data if isinstance(part, tuple)]  # type: ignore[misc]

    def list_folder(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """Every message in the folder, as raw bytes, in UID order (read-only: flags untouched)."""
        return [part[1] for part in self._fetch_all(user, folder, "BODY.PEEK[]")]

    def folder_flags(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """The FLAGS response of every message in the folder, in UID order."""
        with self._session(user) as client:
            typ, data = client.select(_imap_quote(folder), readonly=True)
            if typ != "OK":
                raise RuntimeError(f"cannot select {folder!r} of {user}: {data!r}")
            if not int(data[0]):
                return []
            typ, data = client.uid("FETCH", "1:*", "(FLAGS)")
            return [line for line in data if isinstance(line, bytes)]

    def folder_exists(self, user: str, folder: str) -> bool:
        result = self.doveadm("mailbox", "list", "-u", user)
        names = result.stdout.decode(errors="replace").splitlines()
        return folder in names


def _signal_group(group: int, sig: signal.Signals) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        pass


def _wait_group_gone(group: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.01)
    return False


def _imap_quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class ImapAccount:
    """One Dovecot user, fresh for a test."""

    server: Dovecot
    user: str
    password: str

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def imap_port(self) -> int:
        return self.server.imap_port

    @property
    def imaps_port(self) -> int:
        return self.server.imaps_port

    @property
    def ca_file(self) -> str:
        return self.server.ca_file

    def deliver(self, raw: bytes, folder: str = "INBOX") -> None:
        self.server.deliver(self.user, raw, folder)

    def deliver_many(self, raws: list[bytes], folder: str = "INBOX") -> None:
        self.server.deliver_many(self.user, raws, folder)

    def list_folder(self, folder: str = "INBOX") -> list[bytes]:
        return self.server.list_folder(self.user, folder)

    def folder_flags(self, folder: str = "INBOX") -> list[bytes]:
        return self.server.folder_flags(self.user, folder)

    def folder_exists(self, folder: str) -> bool:
        return self.server.folder_exists(self.user, folder)


class SilentServer:
    """A listening socket whose connections are accepted and never answered (timeout tests)."""

    def __init__(self, host: str = HOST) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((host, 0))
        self._sock.listen(16)  # the kernel completes handshakes; nobody ever speaks
        self.host = host
        self.port = self._sock.getsockname()[1]

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# SMTP sink


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    tls: bool  # the message came over an encrypted connection
    authenticated_as: str | None


@dataclass
class _Rule:
    stage: str  # "RCPT" | "DATA"
    reply: str
    recipient: str | None  # None: any recipient
    remaining: int | None  # None: for ever

    def matches(self, stage: str, recipients: list[str]) -> bool:
        if self.stage != stage or self.remaining == 0:
            return False
        return self.recipient is None or self.recipient in (r.lower() for r in recipients)


_DEFAULT_TEXT = {
    421: "4.3.2 Service not available, closing transmission channel",
    450: "4.2.0 Mailbox unavailable",
    451: "4.3.0 Local error in processing, try again later",
    452: "4.3.1 Insufficient system storage",
    550: "5.1.1 Mailbox unavailable",
    552: "5.3.4 Message too big",
    553: "5.1.3 Mailbox name not allowed",
    554: "5.7.1 Transaction failed",
}


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        reply = self._sink._scripted_reply("RCPT", [address])
        if reply is not None:
            _close_after_421(server, reply)
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = self._sink._scripted_reply("DATA", list(envelope.rcpt_tos))
        if reply is not None:
            _close_after_421(server, reply)
            return reply
        transport = server.transport
        tls = transport is not None and transport.get_extra_info("ssl_object") is not None
        auth = session.auth_data
        login = auth.login.decode(errors="replace") if isinstance(auth, LoginPassword) else None
        self._sink._record(
            ReceivedMessage(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                raw=bytes(envelope.original_content or b""),
                tls=tls,
                authenticated_as=login,
            )
        )
        return "250 2.0.0 Message accepted for delivery"


def _close_after_421(server: SMTP, reply: str) -> None:
    # A 421 means the server closes the channel; close once the reply has been written.
    if reply.startswith("421") and server.transport is not None:
        server.loop.call_soon(server.transport.close)


class SmtpSink:
    """An SMTP server on 127.0.0.1 that keeps (or just counts) what it receives.

    Scriptable failures: `fail_next(count, code, stage=...)` and
    `fail_recipient(address, code, ...)`. Optional STARTTLS (`starttls=True`), implicit TLS
    (`implicit_tls=True`) and AUTH PLAIN/LOGIN (`auth=(user, password)`).
    """

    def __init__(
        self,
        *,
        host: str = HOST,
        port: int | None = None,
        store: bool = True,
        tls: TlsFiles | None = None,
        starttls: bool = False,
        require_starttls: bool = False,
        implicit_tls: bool = False,
        auth: tuple[str, str] | None = None,
        auth_required: bool = False,
        auth_require_tls: bool | None = None,
        oauth2: TokenServer | None = None,
    ) -> None:
        if (starttls or implicit_tls) and tls is None:
            tls = make_tls_files(make_server_dir("umsmtp-"))
            self._own_tls_dir: Path | None = tls.ca_cert.parent
        else:
            self._own_tls_dir = None
        if starttls and implicit_tls:
            raise ValueError("choose STARTTLS or implicit TLS, not both")
        self.host = host
        self.port = port or 0
        self.tls = tls
        self.store = store
        self._fixed_port = port is not None
        self._starttls = starttls
        self._require_starttls = require_starttls
        self._implicit_tls = implicit_tls
        self._auth = auth
        self._auth_required = auth_required
        # By default AUTH needs STARTTLS first on a STARTTLS sink; a plain sink offers AUTH in
        # clear so clients can be tested without TLS; implicit TLS is encrypted from the start.
        self._auth_require_tls = starttls if auth_require_tls is None else auth_require_tls
        self._oauth2 = oauth2  # AUTH XOAUTH2 against this token server
        self._cond = threading.Condition()
        self._messages: list[ReceivedMessage] = []
        self._count = 0
        self._rules: list[_Rule] = []
        self._rejections: list[tuple[str, str]] = []
        self._controller: Controller | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def _make_controller(self, port: int) -> Controller:
        kwargs: dict = {}
        if self._starttls:
            assert self.tls is not None
            kwargs["tls_context"] = self.tls.server_context()
            kwargs["require_starttls"] = self._require_starttls
        if self._implicit_tls:
            assert self.tls is not None
            kwargs["ssl_context"] = self.tls.server_context()
        if self._auth is not None:
            kwargs["authenticator"] = self._authenticate
        if self._auth is not None or self._oauth2 is not None:
            kwargs["auth_required"] = self._auth_required
            kwargs["auth_require_tls"] = self._auth_require_tls
        handler = _SinkHandler(self) if self._oauth2 is None else _OAuth2SinkHandler(self, self._oauth2)
        return Controller(
            handler,
            hostname=self.host,
            port=port,
            ready_timeout=START_TIMEOUT,
            server_hostname="sink.test",
            **kwargs,
        )

    def start(self) -> SmtpSink:
        if self._controller is not None:
            return self
        attempts = 1 if self._fixed_port else 5
        last_error: Exception | None = None
        for _ in range(attempts):
            port = self.port if self._fixed_port else free_port(self.host)
            controller = self._make_controller(port)
            try:
                controller.start()
            except Exception as exc:  # another process took the port between pick and bind
                last_error = exc
                continue
            self._controller = controller
            self.port = port
            return self
        raise ServerStartError(f"SMTP sink could not listen on {self.host}: {last_error!r}")

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
        if self._own_tls_dir is not None:
            shutil.rmtree(self._own_tls_dir, ignore_errors=True)
            self._own_tls_dir = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- scripting ---------------------------------------------------------------------------

    def fail_next(self, count: int, code: int, message: str | None = None, *, stage: str = "DATA") -> None:
        """Answer `code` to the next `count` DATA (or RCPT) commands."""
        self._add_rule(stage, code, message, None, count)

    def fail_recipient(
        self,
        address: str,
        code: int,
        message: str | None = None,
        *,
        stage: str = "RCPT",
        count: int | None = None,
    ) -> None:
        """Answer `code` for this recipient (at RCPT, or at DATA when it is among the
        recipients), `count` times or for ever."""
        self._add_rule(stage, code, message, address.lower(), count)

    def clear_failures(self) -> None:
        with self._cond:
            self._rules.clear()

    def _add_rule(
        self, stage: str, code: int, message: str | None, recipient: str | None, count: int | None
    ) -> None:
        stage = stage.upper()
        if stage not in ("RCPT", "DATA"):
            raise ValueError(f"stage must be RCPT or DATA, not {stage!r}")
        if not 400 <= code <= 599:
            raise ValueError(f"a scripted failure needs a 4xx or 5xx code, not {code}")
        if count is not None and count < 1:
            raise ValueError(f"count must be positive or None, not {count}")
        reply = f"{code} {message or _DEFAULT_TEXT.get(code, 'Scripted failure')}"
        with self._cond:
            self._rules.append(_Rule(stage, reply, recipient, count))

    def _scripted_reply(self, stage: str, recipients: list[str]) -> str | None:
        with self._cond:
            for rule in self._rules:
                if rule.matches(stage, recipients):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    self._rejections.append((stage, rule.reply))
                    self._cond.notify_all()
                    return rule.reply
        return None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object
    ) -> AuthResult:
        assert self._auth is not None
        user, password = self._auth
        ok = (
            isinstance(data, LoginPassword)
            and data.login == user.encode()
            and data.password == password.encode()
        )
        # handled=False: aiosmtpd then answers the failure (535) itself.
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    # -- what arrived ------------------------------------------------------------------------

    def _record(self, message: ReceivedMessage) -> None:
        with self._cond:
            self._count += 1
            if self.store:
                self._messages.append(message)
            self._cond.notify_all()

    @property
    def count(self) -> int:
        with self._cond:
            return self._count

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._cond:
            return list(self._messages)

    @property
    def rejections(self) -> list[tuple[str, str]]:
        """(stage, reply) of every scripted failure answered so far."""
        with self._cond:
            return list(self._rejections)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """Block until at least `count` messages have been accepted; TimeoutError otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._count >= count, timeout):
                raise TimeoutError(
                    f"SMTP sink on {self.host}:{self.port} got {self._count} of {count} "
                    f"messages within {timeout} s"
                )
            return list(self._messages)

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()
            self._rejections.clear()
            self._count = 0


# --------------------------------------------------------------------------------------------
# OAuth2: a token server (device code, refresh, introspection) for Dovecot's oauth2 passdb and the sink


@dataclass
class _Device:
    user: str
    pending: int  # authorization_pending answers still to give


class TokenServer:
    """A small OAuth2 authorisation server on 127.0.0.1 (HTTP, a thread of this process).

    Endpoints: ``device_url`` (RFC 8628 device authorisation), ``token_url`` (device_code and
    refresh_token grants) and ``introspection_url`` (RFC 7662, what Dovecot's oauth2 passdb asks with
    ``introspection_mode = post``). Access tokens expire ``lifetime`` seconds after issue by the clock
    ``now`` (pass the test's injected clock); ``expires_in`` tells clients ``advertised`` seconds, which
    may be longer, so a client meets a server-side expiry it could not foresee. Refresh tokens rotate
    on every refresh, as Microsoft's do; ``revoke_refresh_tokens()`` makes the next refresh fail with
    invalid_grant.
    """

    def __init__(
        self,
        *,
        client_id: str = "test-client",
        now: Callable[[], float] = time.monotonic,
        lifetime: float = 3.0,
        advertised: float | None = None,
        pending_polls: int = 0,
        device_user: str = "user@localhost",
        host: str = HOST,
    ) -> None:
        self.client_id = client_id
        self.now = now
        self.lifetime = lifetime
        self.advertised = lifetime if advertised is None else advertised
        self.pending_polls = pending_polls
        self.device_user = device_user
        self.host = host
        self.lock = threading.Lock()
        self.access: dict[str, tuple[str, float]] = {}  # token -> (user, expires at)
        self.refresh: dict[str, str] = {}  # live refresh token -> user
        self.devices: dict[str, _Device] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path, form) in arrival order
        self.introspections = 0
        self.refused = 0  # access tokens presented (to Dovecot or the sink) after they expired
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> TokenServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                status, body = server.answer(self.path, form)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._http = ThreadingHTTPServer((self.host, 0), Handler)
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            http.shutdown()
            http.server_close()

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._http is not None, "start the token server first"
        return f"http://{self.host}:{self._http.server_address[1]}"

    @property
    def device_url(self) -> str:
        return self.base_url + "/device"

    @property
    def token_url(self) -> str:
        return self.base_url + "/token"

    @property
    def introspection_url(self) -> str:
        return self.base_url + "/introspect"

    # -- state -------------------------------------------------------------------------------

    def sign_in(self, user: str) -> str:
        """A refresh token for ``user``, as a finished device login would give."""
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.refresh[token] = user
        return token

    def revoke_refresh_tokens(self) -> None:
        with self.lock:
            self.refresh.clear()

    def active_user(self, token: str) -> str | None:
        """Whose access token this is, if the server still takes it."""
        with self.lock:
            user, expires = self.access.get(token, ("", 0.0))
            if user and self.now() < expires:
                return user
            self.refused += 1
            return None

    @property
    def issued(self) -> int:
        with self.lock:
            return len(self.access)

    # -- the endpoints -----------------------------------------------------------------------

    def answer(self, path: str, form: dict[str, str]) -> tuple[int, dict]:
        with self.lock:
            self.requests.append((path, dict(form)))
        if path == "/introspect":
            with self.lock:
                self.introspections += 1
            user = self.active_user(form.get("token", ""))
            return 200, {"active": True, "username": user} if user else {"active": False}
        if form.get("client_id") != self.client_id:
            return 400, {"error": "invalid_client", "error_description": "unknown client_id"}
        if path == "/device":
            code = secrets.token_urlsafe(16)
            with self.lock:
                self.devices[code] = _Device(self.device_user, self.pending_polls)
            return 200, {
                "device_code": code,
                "user_code": "WDJB-MJHT",
                "verification_uri": self.base_url + "/activate",
                "expires_in": 900,
                "interval": 5,
            }
        if path != "/token":
            return 404, {"error": "not_found"}
        grant = form.get("grant_type")
        with self.lock:
            if grant == "urn:ietf:params:oauth:grant-type:device_code":
                device = self.devices.get(form.get("device_code", ""))
                if device is None:
                    return 400, {"error": "expired_token"}
                if device.pending > 0:
                    device.pending -= 1
                    return 400, {"error": "authorization_pending"}
                del self.devices[form["device_code"]]
                user = device.user
            elif grant == "refresh_token":
                user = self.refresh.pop(form.get("refresh_token", ""), "")
                if not user:
                    return 400, {"error": "invalid_grant", "error_description": "AADSTS70008: revoked\ntrace"}
            else:
                return 400, {"error": "unsupported_grant_type"}
            access = secrets.token_urlsafe(24)
            self.access[access] = (user, self.now() + self.lifetime)
            refresh = secrets.token_urlsafe(24)
            self.refresh[refresh] = user
        return 200, {
            "token_type": "Bearer",
            "access_token": access,
            "expires_in": self.advertised,
            "refresh_token": refresh,
            "scope": form.get("scope", ""),
        }


class _OAuth2SinkHandler(_SinkHandler):
    """The sink's handler plus AUTH XOAUTH2, checked against a TokenServer."""

    def __init__(self, sink: SmtpSink, tokens: TokenServer) -> None:
        super().__init__(sink)
        self._tokens = tokens

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        if len(args) < 2:
            return AuthResult(success=False, handled=False)
        try:
            fields = dict(
                part.split("=", 1) for part in base64.b64decode(args[1]).decode().split("\x01") if part
            )
        except ValueError:
            return AuthResult(success=False, handled=False)
        user = fields.get("user", "")
        token = fields.get("auth", "").removeprefix("Bearer ")
        if self._tokens.active_user(token) != user:
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
