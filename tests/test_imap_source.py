"""ImapSource against a real Dovecot on 127.0.0.1 (see tests/servers.py)."""

from __future__ import annotations

import time
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import Any

import pytest
from imapclient import IMAPClient

from inbox.sources.imap import ImapError, ImapSource
from mailkit.servers import ImapServer, ServerSettingError
from tests.servers import Dovecot, ImapAccount, SilentServer


def message(n: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"sender{n}@example.org"
    msg["To"] = "programme@example.org"
    msg["Subject"] = f"join {n}"
    msg["Message-ID"] = f"<msg-{n}@example.org>"
    # 8-bit UTF-8 body: the bytes must come back untouched.
    msg.set_content(f"join\nname: Zoë Ångström {n}\n", cte="8bit")
    return msg.as_bytes(policy=SMTP_POLICY)


def settings_for(account: ImapAccount, **overrides: Any) -> ImapServer:
    values: dict[str, Any] = {
        "host": account.host,
        "port": account.imaps_port,
        "security": "ssl",
        "username": account.user,
        "password": account.password,
        "ca_file": account.ca_file,
        "timeout": 10.0,
    }
    values.update(overrides)
    return ImapServer(**values)


class Sleeps:
    """Records the backoff delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def open_source(account: ImapAccount, state: dict | None = None, **overrides: Any):
    sleeps = Sleeps()
    max_attempts = overrides.pop("max_attempts", 5)
    source = ImapSource(
        settings_for(account, **overrides),
        {} if state is None else state,
        sleep=sleeps,
        max_attempts=max_attempts,
    )
    return source, sleeps


class NoMoveSource(ImapSource):
    """Forces the COPY + \\Deleted + UID EXPUNGE path, as on a server without MOVE."""

    def _supports_move(self, client: IMAPClient) -> bool:
        return False


class RecordingSource(ImapSource):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.move_support: list[bool] = []

    def _supports_move(self, client: IMAPClient) -> bool:
        answer = super()._supports_move(client)
        self.move_support.append(answer)
        return answer


# -- fetching -----------------------------------------------------------------------------------


def test_fetch_yields_delivered_messages_exactly(imap_account: ImapAccount) -> None:
    delivered = [message(n) for n in range(3)]
    for raw in delivered:
        imap_account.deliver(raw)
    source, _ = open_source(imap_account)
    with source:
        fetched = list(source.fetch_new())

    assert [item.raw for item in fetched] == delivered
    assert len({item.ref for item in fetched}) == 3
    assert imap_account.folder_flags() and all(
        b"\\Seen" not in flags for flags in imap_account.folder_flags()
    )


def test_fetch_crosses_batches_in_uid_order(imap_account: ImapAccount) -> None:
    delivered = [message(n) for n in range(75)]  # one and a half batches
    imap_account.deliver_many(delivered)
    source, _ = open_source(imap_account)
    with source:
        assert [item.raw for item in source.fetch_new()] == delivered


def test_mark_processed_moves_to_a_created_folder(imap_account: ImapAccount) -> None:
    first, second = message(1), message(2)
    imap_account.deliver(first)
    imap_account.deliver(second)
    assert not imap_account.folder_exists("Processed")
    state: dict = {}
    source = RecordingSource(settings_for(imap_account), state, sleep=Sleeps())
    with source:
        fetched = list(source.fetch_new())
        source.mark_processed(fetched[0].ref)
        source.mark_processed(fetched[0].ref)  # a repeat (crash before commit) is harmless
        again = [item.raw for item in source.fetch_new()]

    assert again == [second]
    assert imap_account.list_folder("Processed") == [first]
    assert imap_account.list_folder() == [second]
    assert source.move_support and all(source.move_support)  # Dovecot has MOVE: used
    uidvalidity = int(fetched[0].ref.split(":")[0])
    assert state[source._settings.state_key] == {"uidvalidity": uidvalidity, "last_uid": 1}


def test_mark_processed_many_moves_them_in_one_go_and_advances_the_state(
    imap_account: ImapAccount,
) -> None:
    delivered = [message(n) for n in range(4)]
    imap_account.deliver_many(delivered)
    state: dict = {}
    source, _ = open_source(imap_account, state)
    key = source._settings.state_key
    with source:
        one, two, three, four = source.fetch_new()
        uidvalidity = int(one.ref.split(":")[0])
        stale = f"{uidvalidity + 1}:2"  # another UIDVALIDITY: names some other message
        source.mark_processed_many([one.ref, two.ref, four.ref, stale])
        assert state[key] == {"uidvalidity": uidvalidity, "last_uid": 2}
        assert [item.ref for item in source.fetch_new()] == [three.ref]
        source.mark_processed_many([three.ref])
        assert state[key]["last_uid"] == 4

    # moved in two goes: the first three, then the one left
    assert imap_account.list_folder("Processed") == [delivered[i] for i in (0, 1, 3, 2)]
    assert imap_account.list_folder() == []


def test_quarantine_moves_to_the_quarantine_folder(imap_account: ImapAccount) -> None:
    poison, fine = message(1), message(2)
    imap_account.deliver(poison)
    imap_account.deliver(fine)
    source, _ = open_source(imap_account, quarantine_folder="Held")
    with source:
        first, second = source.fetch_new()
        source.quarantine(first.ref)
        source.mark_processed(second.ref)
        assert list(source.fetch_new()) == []

    assert imap_account.list_folder("Held") == [poison]
    assert imap_account.list_folder("Processed") == [fine]
    assert imap_account.list_folder() == []


def test_copy_and_expunge_fallback_without_move(imap_account: ImapAccount) -> None:
    first, second = message(1), message(2)
    imap_account.deliver(first)
    imap_account.deliver(second)
    source = NoMoveSource(settings_for(imap_account), {}, sleep=Sleeps())
    with source:
        fetched = list(source.fetch_new())
        source.mark_processed(fetched[0].ref)
        source.quarantine(fetched[1].ref)
        assert list(source.fetch_new()) == []

    # Expunged, not merely flagged \Deleted: the folder listing includes flagged mail.
    assert imap_account.list_folder() == []
    assert imap_account.list_folder("Processed") == [first]
    assert imap_account.list_folder("Quarantine") == [second]


def test_unprocessed_message_comes_back_and_state_advances_over_done_prefix(
    imap_account: ImapAccount,
) -> None:
    for n in range(3):
        imap_account.deliver(message(n))
    state: dict = {}
    source, _ = open_source(imap_account, state)
    key = source._settings.state_key
    with source:
        one, two, three = source.fetch_new()
        source.mark_processed(two.ref)
        source.mark_processed(three.ref)
        assert state[key]["last_uid"] == 0  # message 1 failed: nothing skipped yet
        assert [item.ref for item in source.fetch_new()] == [one.ref]
        source.mark_processed(one.ref)
        assert state[key]["last_uid"] == 3

    imap_account.deliver(message(4))
    restarted, _ = open_source(imap_account, state)
    with restarted:
        assert [item.raw for item in restarted.fetch_new()] == [message(4)]


def test_changed_uidvalidity_rescans_the_folder(dovecot: Dovecot, imap_account: ImapAccount) -> None:
    imap_account.deliver(message(1), folder="Incoming")
    imap_account.deliver(message(2), folder="Incoming")
    state: dict = {}
    source, _ = open_source(imap_account, state, folder="Incoming")
    with source:
        old_first, _old_second = source.fetch_new()
        source.mark_processed(old_first.ref)
    key = source._settings.state_key
    old_uidvalidity = state[key]["uidvalidity"]
    assert state[key]["last_uid"] == 1

    # The folder is recreated: UIDs restart at 1 under a new UIDVALIDITY.
    dovecot.delete_folder(imap_account.user, "Incoming")
    imap_account.deliver(message(3), folder="Incoming")
    imap_account.deliver(message(4), folder="Incoming")
    source, _ = open_source(imap_account, state, folder="Incoming")
    with source:
        fetched = list(source.fetch_new())
        assert [item.raw for item in fetched] == [message(3), message(4)]  # UID 1 not skipped
        assert state[key]["uidvalidity"] != old_uidvalidity
        # A reference from before the change names another message now: it is left alone.
        source.mark_processed(old_first.ref)
        assert imap_account.list_folder("Incoming") == [message(3), message(4)]


def test_missing_folder_is_a_clear_error(imap_account: ImapAccount) -> None:
    source, sleeps = open_source(imap_account, folder="Nowhere")
    with source, pytest.raises(ImapError, match="cannot open folder 'Nowhere'"):
        list(source.fetch_new())
    assert sleeps.delays == []


def test_bad_reference_is_a_clear_error(imap_account: ImapAccount) -> None:
    source, _ = open_source(imap_account)
    with source, pytest.raises(ValueError, match="UIDVALIDITY:UID"):
        source.mark_processed("not-a-ref")


# -- TLS, authentication ------------------------------------------------------------------------


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_tls_verifies_with_the_ca_file(imap_account: ImapAccount, security: str) -> None:
    port = imap_account.imaps_port if security == "ssl" else imap_account.imap_port
    imap_account.deliver(message(1))
    source, _ = open_source(imap_account, security=security, port=port)
    with source:
        assert [item.raw for item in source.fetch_new()] == [message(1)]


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_tls_fails_against_the_default_trust_store(imap_account: ImapAccount, security: str) -> None:
    port = imap_account.imaps_port if security == "ssl" else imap_account.imap_port
    source, sleeps = open_source(imap_account, security=security, port=port, ca_file=None)
    with source, pytest.raises(ImapError, match="certificate verify failed.*set \\[imap\\] ca_file"):
        list(source.fetch_new())
    assert sleeps.delays == []  # a certificate problem is not retried


def test_tls_checks_the_host_name(imap_account: ImapAccount) -> None:
    # The certificate names 127.0.0.1 and localhost, nothing else.
    source, _ = open_source(imap_account, host="localhost")
    with source:
        assert list(source.fetch_new()) == []


def test_plain_connection_only_to_localhost(imap_account: ImapAccount) -> None:
    imap_account.deliver(message(1))
    source, _ = open_source(imap_account, security="none", port=imap_account.imap_port)
    with source:
        assert [item.raw for item in source.fetch_new()] == [message(1)]
    with pytest.raises(
        ServerSettingError, match="imap.security: 'none' .* only for a server on this machine"
    ):
        ImapServer(host="imap.example.org", security="none", username="u", password="p")


def test_xoauth2_login(imap_account: ImapAccount) -> None:
    # The test Dovecot checks an XOAUTH2 token like a password.
    imap_account.deliver(message(1))
    source, _ = open_source(imap_account, auth="oauth2")
    with source:
        assert [item.raw for item in source.fetch_new()] == [message(1)]


def test_wrong_password_is_a_clear_error_without_the_password(
    imap_account: ImapAccount,
) -> None:
    secret = "Wr0ng-Secret-Value"
    source, sleeps = open_source(imap_account, password=secret)
    with source, pytest.raises(ImapError) as failure:
        list(source.fetch_new())
    text = str(failure.value)
    assert "login refused ([AUTHENTICATIONFAILED]" in text
    assert "check the password" in text
    assert imap_account.user in text and str(imap_account.imaps_port) in text
    assert "127.0.0.1" in text
    assert secret not in text and secret not in repr(failure.value.__cause__)
    assert secret not in repr(source._settings)
    assert sleeps.delays == []


# -- dropped connections, timeouts --------------------------------------------------------------


def test_reconnects_after_the_server_kicks_the_client(dovecot: Dovecot, imap_account: ImapAccount) -> None:
    imap_account.deliver(message(1))
    source, sleeps = open_source(imap_account)
    with source:
        [first] = source.fetch_new()
        dovecot.kick(imap_account.user)
        source.mark_processed(first.ref)  # the dropped session is re-established
        imap_account.deliver(message(2))
        dovecot.kick(imap_account.user)
        assert [item.raw for item in source.fetch_new()] == [message(2)]

    # A working connection the server closed is logged in again at once, without a wait.
    assert sleeps.delays == []
    assert imap_account.list_folder("Processed") == [message(1)]


def test_reconnects_after_a_server_restart_mid_iteration(dovecot: Dovecot, imap_account: ImapAccount) -> None:
    delivered = [message(n) for n in range(60)]  # two fetch batches
    imap_account.deliver_many(delivered)
    source, sleeps = open_source(imap_account)
    seen = []
    with source:
        for item in source.fetch_new():
            seen.append(item.raw)
            if len(seen) == 1:
                dovecot.restart()  # the second batch and the moves need a new connection
            source.mark_processed(item.ref)

    assert seen == delivered
    assert sleeps.delays == []  # the restarted server is up again: logged in at once
    assert imap_account.list_folder("Processed") == delivered


def test_gives_up_after_max_attempts_naming_the_server(dovecot: Dovecot, imap_account: ImapAccount) -> None:
    source, sleeps = open_source(imap_account, max_attempts=4)
    dovecot.stop()
    try:
        with source, pytest.raises(ImapError) as failure:
            list(source.fetch_new())
    finally:
        dovecot.start()
    text = str(failure.value)
    assert "after 4 attempts" in text
    assert f"{imap_account.user} at 127.0.0.1:{imap_account.imaps_port}" in text
    assert imap_account.password not in text
    assert sleeps.delays == [1.0, 2.0, 4.0]


@pytest.mark.parametrize("security", ["none", "ssl"])
def test_silent_server_times_out(security: str) -> None:
    with SilentServer() as silent:
        settings = ImapServer(
            host="127.0.0.1",
            port=silent.port,
            security=security,
            username="u",
            password="p",
            timeout=0.5,
        )
        source = ImapSource(settings, {}, sleep=Sleeps(), max_attempts=1)
        started = time.monotonic()
        with pytest.raises(ImapError, match=f"127.0.0.1:{silent.port}"):
            list(source.fetch_new())
        elapsed = time.monotonic() - started
    assert 0.4 < elapsed < 2.0


def test_read_timeout_on_a_frozen_server(dovecot: Dovecot, imap_account: ImapAccount) -> None:
    imap_account.deliver(message(1))
    source, sleeps = open_source(imap_account, timeout=0.5, max_attempts=2)
    with source:
        [item] = source.fetch_new()  # logged in and selected
        dovecot.freeze()
        try:
            started = time.monotonic()
            with pytest.raises(ImapError, match="after 2 attempts"):
                source.mark_processed(item.ref)
            elapsed = time.monotonic() - started
        finally:
            dovecot.unfreeze()
    # One read timeout on the live session, one connect/greeting timeout on the retry.
    assert 0.9 < elapsed < 3.0
    assert sleeps.delays == [1.0]
