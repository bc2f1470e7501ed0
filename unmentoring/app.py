"""The composition root: one place that turns a Config into the working parts of the service."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cached_property
from pathlib import Path
from time import sleep as time_sleep
from typing import TYPE_CHECKING, Any

from matcher.calendar import Calendar, describe_schedule
from matcher.clock import Clock, SystemClock
from matcher.model import Notice
from matcher.private_files import private_folder
from matcher.skips import skipped_rounds
from matcher.store import Store
from unmentoring.config import WEEKDAYS, Config, parse_cadence, skip_months
from unmentoring.csv_cells import write_csv
from unmentoring.upcoming import upcoming_round

if TYPE_CHECKING:  # the working parts are built, and their modules imported, when first used
    from inbox.processor import Processor
    from inbox.sources.base import Source
    from mailer.outbox import Outbox
    from mailer.settings import MailSettings
    from mailer.smtp import SmtpSender
    from unmentoring.cycle import Cycle

STORE_WAIT_SECONDS = 30.0  # a running service holds the database for a pass: others wait for it this long


def calendar_from_config(config: Config) -> Calendar:
    programme = config.programme
    which, weekday = parse_cadence(programme.cadence, config.source)
    hour, minute = (int(part) for part in programme.start_time.split(":"))
    return Calendar(
        zone=programme.zone,
        which=which,
        weekday=weekday,
        start_time=time(hour, minute),
        meeting_week=programme.meeting_week,
        followup_weekday=WEEKDAYS.index(programme.followup_day.lower()),
        reminder_after_days=programme.reminder_after_days,
        every_months=programme.every_months,
        skip_months=skip_months(programme, config.source),
        nudge_after_days=programme.nudge_after_days,
    )


def summary_notice(
    store: Store, round_id: str, now: datetime, mail: MailSettings, config: Config, calendar: Calendar
) -> Notice:
    """The organisers' summary with the full list of reasons attached as CSV (written here, by the one
    CSV writer, whose cells are safe to open in a spreadsheet)."""
    from mailer.insight import REASON_COLUMNS
    from mailer.summary import build_summary

    notice = build_summary(
        store,
        round_id,
        mail,
        now=now,
        schedule=describe_schedule(calendar),
        ghost_rounds=config.limits.ghost_rounds,
    )
    out = io.StringIO()
    write_csv(out, REASON_COLUMNS, notice.values["reason_rows"])
    notice.values["attachments"] = {f"reasons-{round_id}.csv": out.getvalue().encode("utf-8")}
    return notice


@dataclass
class App:
    """The open database and the calendar; the other parts are built when a command first uses them."""

    config: Config
    clock: Clock
    store: Store
    calendar: Calendar

    @classmethod
    def open(
        cls, config: Config, clock: Clock | None = None, *, wait: float = 0, backup_every: float = 0
    ) -> App:
        """Open the database (waiting up to ``wait`` seconds for another process to close it)."""
        clock = clock or SystemClock()
        private_folder(config.data_dir)
        store = Store.open(config.database_path, wait=wait, backup_every=backup_every)
        try:
            calendar = dataclasses.replace(calendar_from_config(config), skipped=skipped_rounds(store))
        except BaseException:
            store.close()
            raise
        return cls(config, clock, store, calendar)

    def next_round_on(self, now: datetime) -> date:
        return upcoming_round(self.calendar, self.store, now).starts_on

    @property
    def outbox_journal(self) -> Path:
        return self.config.data_dir / "outbox.journal"

    def fold_outbox_journal(self) -> None:
        """Bring the outbox's records up to date with the sends journaled since the last fold; a command
        that only reads (status) builds no outbox, with its templates, when there is nothing to fold."""
        journal = self.outbox_journal
        if journal.exists() and journal.stat().st_size:
            self.outbox.fold_journal()

    @cached_property
    def mail(self) -> MailSettings:
        from mailer.settings import mail_settings_from_config

        return mail_settings_from_config(self.config)

    @cached_property
    def outbox(self) -> Outbox:
        from mailer.outbox import Outbox
        from mailer.render import Renderer

        return Outbox(self.store, self.clock, self.mail, Renderer(self.mail), journal=self.outbox_journal)

    @cached_property
    def processor(self) -> Processor:
        from inbox.processor import Processor
        from inbox.settings import inbox_settings_from_config

        return Processor(self.store, self.clock, inbox_settings_from_config(self.config, self.next_round_on))

    @cached_property
    def cycle(self) -> Cycle:
        from matcher import tokens
        from unmentoring.cycle import Cycle

        mail, config, calendar = self.mail, self.config, self.calendar
        return Cycle(
            self.store,
            self.calendar,
            self.config.limits,
            queue=self.outbox.queue_many,
            summarise=lambda s, round_id, now: summary_notice(s, round_id, now, mail, config, calendar),
            member_token=lambda s, member, now: tokens.member_token(s, member, now).token,
        )

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def inbound_source(self) -> Source:
        return inbound_source(self.config, StoreMeta("imap", self.store), self.clock)

    def inbox_maildir(self) -> Path:
        return inbox_maildir(self.config)

    def smtp_sender(self) -> SmtpSender:
        from mailer.smtp import SmtpSender
        from unmentoring.auth import server_credential

        smtp = self.config.smtp
        credential = None if smtp is None else server_credential(self.config, smtp, "SMTP", self.clock)
        return SmtpSender(self.mail.smtp, clock=self.clock, credential=credential)


def inbound_source(
    config: Config,
    state: StoreMeta,
    clock: Clock | None = None,
    *,
    max_attempts: int = 5,
    connect_attempts: int | None = None,
    sleep: Callable[[float], None] = time_sleep,
) -> Source:
    """Where mail comes in (the config decides): IMAP, else the Maildir our receiving server fills.
    ``max_attempts`` and ``connect_attempts``: how often IMAP tries an operation, and ``connect()``;
    ``sleep`` waits between the attempts."""
    from inbox.sources.imap import ImapSource
    from inbox.sources.maildir import MaildirSource
    from unmentoring.auth import server_credential

    imap = config.inbound_imap
    if imap is not None:
        credential = server_credential(config, imap, "IMAP", clock or SystemClock())
        return ImapSource(
            imap,
            state,
            credential=credential,
            max_attempts=max_attempts,
            connect_attempts=connect_attempts,
            sleep=sleep,
        )
    return MaildirSource(inbox_maildir(config))


def inbox_maildir(config: Config) -> Path:
    listener = config.listener()
    assert listener is not None, "production reads IMAP, not a Maildir"
    return listener.maildir


class StoreMeta(MutableMapping[str, Any]):
    """One store meta value seen as a dict, each change committed on its own.

    The IMAP source keeps its UIDVALIDITY and last UID here. The daemon opens the store afresh for each
    pass while the source (and its connection) lives on, so the view is re-bound to each pass's store.
    """

    def __init__(self, name: str, store: Store | None = None) -> None:
        self._name = name
        self._store = store

    def bind(self, store: Store) -> None:
        self._store = store

    def _current(self) -> dict[str, Any]:
        if self._store is None:
            raise RuntimeError(f"store meta {self._name!r} is not bound to an open store")
        return dict(self._store.get_meta(self._name, {}) or {})

    def __getitem__(self, key: str) -> Any:
        return self._current()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        values = self._current()
        values[key] = value
        with self._store.transaction():  # type: ignore[union-attr]
            self._store.set_meta(self._name, values)  # type: ignore[union-attr]

    def __delitem__(self, key: str) -> None:
        values = self._current()
        del values[key]
        with self._store.transaction():  # type: ignore[union-attr]
            self._store.set_meta(self._name, values)  # type: ignore[union-attr]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())
