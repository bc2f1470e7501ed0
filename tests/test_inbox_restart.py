"""The inbox through a real Dovecot that goes away or changes under it: the full processor path
(process_source + Processor + ImapSource + a real Store), with the server restarted mid-poll and
the folder's UIDVALIDITY changed. Whatever happens, every message is applied exactly once and
ends up in the processed folder.

Each message here is a "join" from its own address: applying one twice would show as a second
confirmation to that address, losing one as a missing member.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from inbox.parse import parse_message
from inbox.poll import PollReport, process_source
from inbox.processor import Processor, ProcessResult
from inbox.sources.base import SourceError
from inbox.sources.imap import ImapError, ImapSource, backoff_delay
from mailkit.servers import ImapServer
from matcher.model import Member, Notice, ProcessedMessage
from tests.servers import Dovecot, ImapAccount
from tests.test_apply import Harness, make_message

LOG = logging.getLogger("test.inbox.restart")
FOLDER = "Incoming"  # not INBOX: only another folder can be deleted and recreated


def settings_for(account: ImapAccount, folder: str = "INBOX") -> ImapServer:
    return ImapServer(
        host=account.host,
        port=account.imaps_port,
        security="ssl",
        username=account.user,
        password=account.password,
        ca_file=account.ca_file,
        folder=folder,
        timeout=10.0,
    )


def join_from(name: str) -> bytes:
    return make_message(f"{name}@example.org", "join", message_id=f"join-{name}@example.org")


def addresses(*names: str) -> list[str]:
    return sorted(f"{name}@example.org" for name in names)


def ids_in(account: ImapAccount, folder: str) -> list[str]:
    if not account.folder_exists(folder):  # the source creates its folders on the first move
        return []
    return sorted(parse_message(raw).message_id or "" for raw in account.list_folder(folder))


def join_ids(*names: str) -> list[str]:
    return sorted(f"join-{name}@example.org" for name in names)


def members(box: Harness) -> list[str]:
    return sorted(m.address for m in box.store.all(Member))


class Queue:
    """Records the notices a poll queues."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    def __call__(self, notices: list[Notice]) -> None:
        self.notices.extend(notices)

    def recipients(self) -> list[str]:
        return sorted(address for notice in self.notices for address in notice.to)


class InterruptedProcessor(Processor):
    """The real processor; the first time it has applied the message from `name`, `action` runs
    (inside the store transaction, after the fetch and before the move), standing for whatever
    happens to the server at that moment."""

    def __init__(self, box: Harness, name: str, action: Callable[[], object]) -> None:
        super().__init__(box.store, box.clock, box.settings)
        self._message_id = f"join-{name}@example.org"
        self._action: Callable[[], object] | None = action

    def process(self, raw: bytes) -> ProcessResult:
        result = super().process(raw)
        if self._action is not None and parse_message(raw).message_id == self._message_id:
            action, self._action = self._action, None
            action()
        return result


class Waits:
    """Stands in for the backoff sleep: records each delay and runs `on_wait` (e.g. the server
    coming back while the source waits), so the test never sleeps."""

    def __init__(self, on_wait: Callable[[], object] | None = None) -> None:
        self.delays: list[float] = []
        self._on_wait = on_wait

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self._on_wait is not None:
            self._on_wait()


@pytest.fixture
def restarts_dovecot(dovecot: Dovecot) -> Iterator[Dovecot]:
    """The shared Dovecot, running again after the test whatever the test did to it."""
    try:
        yield dovecot
    finally:
        dovecot.start()


# -- the server restarted mid-poll --------------------------------------------------------------


def test_dovecot_restarted_between_applying_and_moving_loses_and_repeats_nothing(
    restarts_dovecot: Dovecot, imap_account: ImapAccount, box: Harness
) -> None:
    dovecot = restarts_dovecot
    names = [f"person{n:02d}" for n in range(60)]  # more than one IMAP fetch batch
    imap_account.deliver_many([join_from(name) for name in names])
    # Dovecot goes down while the 3rd message is applied and is back by the time the source has
    # waited to reconnect: moving the messages needs a new connection.
    processor = InterruptedProcessor(box, names[2], dovecot.stop)
    waits = Waits(on_wait=dovecot.start)
    queue = Queue()
    state: dict = {}

    with ImapSource(settings_for(imap_account), state, sleep=waits) as source:
        report = process_source(source, box.store, processor, queue, LOG)

    assert waits.delays == [backoff_delay(1)], "the restart was not noticed, or noticed twice"
    assert report == PollReport(applied=60)
    assert queue.recipients() == addresses(*names)  # one confirmation each: none applied twice
    assert members(box) == addresses(*names)
    assert imap_account.list_folder("INBOX") == []
    assert ids_in(imap_account, "Processed") == join_ids(*names)
    with ImapSource(settings_for(imap_account), state, sleep=waits) as source:
        assert process_source(source, box.store, processor, queue, LOG) == PollReport()


def test_applied_messages_left_behind_by_a_server_that_stayed_down_are_not_applied_again(
    restarts_dovecot: Dovecot, imap_account: ImapAccount, box: Harness
) -> None:
    dovecot = restarts_dovecot
    names = ["ann", "bob", "cat", "dan", "eve"]
    imap_account.deliver_many([join_from(name) for name in names])
    # Dovecot stops while "cat" is applied and stays down past the source's retries: the poll
    # gives up with messages committed to the store but not moved out of the inbox.
    processor = InterruptedProcessor(box, "cat", dovecot.stop)
    queue = Queue()
    state: dict = {}
    source = ImapSource(settings_for(imap_account), state, sleep=Waits(), max_attempts=2)
    with source, pytest.raises(ImapError, match="after 2 attempts"):
        process_source(source, box.store, processor, queue, LOG)
    dovecot.start()
    applied_first = members(box)
    moved_first = ids_in(imap_account, "Processed")
    assert set(addresses("ann", "bob", "cat")) <= set(applied_first)  # "cat" was committed
    assert "join-cat@example.org" not in moved_first  # ... and left in the inbox

    with ImapSource(settings_for(imap_account), state, sleep=Waits()) as source:
        report = process_source(source, box.store, processor, queue, LOG)

    # Those left behind come back and are recognised; the others are applied now.
    left_behind = len(applied_first) - len(moved_first)
    assert report == PollReport(applied=len(names) - len(applied_first), duplicates=left_behind)
    assert queue.recipients() == addresses(*names)
    assert members(box) == addresses(*names)
    assert box.store.get(ProcessedMessage, "join-cat@example.org").status == "applied"
    assert imap_account.list_folder("INBOX") == []
    assert ids_in(imap_account, "Processed") == join_ids(*names)


# -- UIDVALIDITY changes ------------------------------------------------------------------------


def recreate_folder(dovecot: Dovecot, account: ImapAccount, raws: list[bytes]) -> None:
    """The folder deleted and made again (a restore or migration): a new UIDVALIDITY, UIDs from 1."""
    dovecot.delete_folder(account.user, FOLDER)
    account.deliver_many(raws, folder=FOLDER)


def test_uidvalidity_change_between_polls_refetches_everything_but_applies_each_once(
    dovecot: Dovecot, imap_account: ImapAccount, box: Harness
) -> None:
    """Polls as `unmentoring tick` makes them: a new connection each time, state kept between."""
    imap_account.deliver_many([join_from("ann"), join_from("bob")], folder=FOLDER)
    settings = settings_for(imap_account, FOLDER)
    state: dict = {}
    queue = Queue()
    with ImapSource(settings, state, sleep=Waits()) as source:
        assert process_source(source, box.store, box.processor, queue, LOG) == PollReport(applied=2)
    before = state[settings.state_key]
    assert before["last_uid"] == 2

    # The folder is restored from a backup taken before the poll, plus one new message. The new
    # one gets UID 1, below the saved mark: only a rescan can find it.
    recreate_folder(dovecot, imap_account, [join_from("cat"), join_from("ann"), join_from("bob")])
    with ImapSource(settings, state, sleep=Waits()) as source:
        report = process_source(source, box.store, box.processor, queue, LOG)

    assert report == PollReport(applied=1, duplicates=2)
    assert state[settings.state_key]["uidvalidity"] != before["uidvalidity"]
    assert queue.recipients() == addresses("ann", "bob", "cat")
    assert members(box) == addresses("ann", "bob", "cat")
    assert imap_account.list_folder(FOLDER) == []
    # The restored copies are filed too, next to the originals.
    assert ids_in(imap_account, "Processed") == join_ids("ann", "ann", "bob", "bob", "cat")


def test_uidvalidity_change_under_a_connection_kept_open_is_noticed_by_the_next_poll(
    dovecot: Dovecot, imap_account: ImapAccount, box: Harness
) -> None:
    """The daemon keeps one connection across polls."""
    imap_account.deliver_many([join_from("ann"), join_from("bob")], folder=FOLDER)
    settings = settings_for(imap_account, FOLDER)
    state: dict = {}
    queue = Queue()
    with ImapSource(settings, state, sleep=Waits()) as source:
        assert process_source(source, box.store, box.processor, queue, LOG) == PollReport(applied=2)
        recreate_folder(dovecot, imap_account, [join_from("cat"), join_from("ann"), join_from("bob")])
        report = process_source(source, box.store, box.processor, queue, LOG)

    assert report == PollReport(applied=1, duplicates=2)
    assert members(box) == addresses("ann", "bob", "cat")
    assert imap_account.list_folder(FOLDER) == []


def test_folder_recreated_mid_poll_loses_no_message(
    dovecot: Dovecot, imap_account: ImapAccount, box: Harness
) -> None:
    imap_account.deliver_many([join_from("ann"), join_from("bob")], folder=FOLDER)
    settings = settings_for(imap_account, FOLDER)
    state: dict = {}
    restored = [join_from("cat"), join_from("ann"), join_from("bob")]
    # While "ann" is applied, the folder is restored with a new message first ("cat", UID 1).
    processor = InterruptedProcessor(box, "ann", lambda: recreate_folder(dovecot, imap_account, restored))
    queue = Queue()
    with ImapSource(settings, state, sleep=Waits()) as source:
        try:
            process_source(source, box.store, processor, queue, LOG)
        except SourceError as exc:  # giving up on this poll is fine; losing a message is not
            LOG.info("first poll gave up: %s", exc)
    for _ in range(2):  # later polls, as cron runs them, finish the job
        with ImapSource(settings, state, sleep=Waits()) as source:
            process_source(source, box.store, processor, queue, LOG)

    assert members(box) == addresses("ann", "bob", "cat")
    assert queue.recipients() == addresses("ann", "bob", "cat")
    assert imap_account.list_folder(FOLDER) == []
