"""The monthly cycle: which round steps are due now, and doing each exactly once.

A round's steps, in the programme's time zone: start (pair and send the introductions), follow up after the
meeting week, remind whoever has not answered, close before the next round starts (no reply recorded, ghosts
paused and told), then the organisers' summary. Each step is recorded in ``Round.steps_done`` in the same
transaction that queues its emails, and every email has an idempotency key, so running a step twice, or again
after a crash, queues nothing twice and loses nothing. One window remains in sending (mailer/outbox.py): a
crash after the SMTP server accepted a message and before its 250 was recorded sends it again, with the same
Message-ID.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from matcher import rematch, rounds
from matcher.calendar import Calendar, RoundDates, current_round, round_dates_for_id
from matcher.limits import Limits
from matcher.model import Group, Member, MemberStatus, Notice, Result, Round, RoundState, RoundStep
from matcher.store import Store
from unmentoring.upcoming import upcoming_round

log = logging.getLogger(__name__)

QueueNotices = Callable[[list[Notice]], object]
Summarise = Callable[[Store, str, datetime], Notice]
TokenOf = Callable[[Store, Member, datetime], str]

INTROS, NUDGES, FOLLOWUPS, REMINDERS, CLOSED, SUMMARY = RoundStep
ASKABLE = frozenset({MemberStatus.ACTIVE, MemberStatus.PAUSED})


@dataclass
class Cycle:
    store: Store
    calendar: Calendar
    limits: Limits
    # what the steps need from the mailer and the tokens (wired in unmentoring/app.py)
    queue: QueueNotices = field(kw_only=True)
    summarise: Summarise = field(kw_only=True)
    member_token: TokenOf = field(kw_only=True)

    # -- what is due

    def run_due(self, now: datetime) -> list[str]:
        """Do every step that is due at ``now``; return what was done, e.g. ["2026-12 intros"]."""
        done: list[str] = []
        today = now.astimezone(self.calendar.zone).date()
        done += self.resume_ended_pauses(today, now)
        for stored in self._open_rounds():
            dates = round_dates_for_id(self.calendar, stored.id)
            if now >= dates.closes_at:
                done += self.close(stored.id, now)
        for stored in self._closed_without_summary():
            done += self.send_summary(stored.id, now)
        dates = current_round(self.calendar, now)
        if self.store.get(Round, dates.round_id) is None and today <= dates.meeting_week_end:
            done += self.start(dates, now)
        for stored in self._open_rounds():
            dates = round_dates_for_id(self.calendar, stored.id)
            # A nudge is only worth sending while the meeting week is on.
            if dates.nudge_at is not None and dates.nudge_at <= now < dates.followup_at:
                done += self.send_nudges(stored.id, now)
            done += self.rematch(stored.id, now)
            if now >= dates.followup_at:
                done += self.send_followups(stored.id, now)
            if dates.reminder_at is not None and now >= dates.reminder_at:
                done += self.send_reminders(stored.id, now)
        return done

    def _open_rounds(self) -> list[Round]:
        return sorted(
            (r for r in self.store.all(Round) if r.state is RoundState.STARTED), key=lambda r: r.ordinal
        )

    def _closed_without_summary(self) -> list[Round]:
        return [
            r for r in self.store.all(Round) if r.state is RoundState.CLOSED and SUMMARY not in r.steps_done
        ]

    # -- the steps

    def start(self, dates: RoundDates, now: datetime, *, seed: int | None = None) -> list[str]:
        """Start the round (pairing) and queue one introduction per group."""
        with self.store.transaction():
            started = rounds.start_round(self.store, dates, now, seed=seed)
            if INTROS in started.steps_done:
                return []
            groups = rounds.groups_of_round(self.store, started.id)
            notices = [notice for group in groups for notice in self._intros(group, dates, now)]
            introduced = len(groups)
            alone = rounds.members_of(self.store, started.unpaired)
            notices += [self._sat_out(member, started, now) for member in alone if member.address]
            self.queue(notices)
            self._mark(started, INTROS)
        log.info("round %s started: %d groups introduced", started.id, introduced)
        return [f"{started.id} {INTROS}"]

    def send_followups(self, round_id: str, now: datetime) -> list[str]:
        return self._ask(round_id, now, step=FOLLOWUPS, kind="followup")

    def send_reminders(self, round_id: str, now: datetime) -> list[str]:
        return self._ask(round_id, now, step=REMINDERS, kind="reminder")

    def _ask(self, round_id: str, now: datetime, *, step: RoundStep, kind: str) -> list[str]:
        """Ask each member of each group whether they met (the reminder: only those who have not said)."""

        def ask(group: Group, dates: RoundDates) -> list[Notice]:
            if kind == "reminder" and group.result() in (Result.MET, Result.MISSED, Result.DISPUTED):
                return []
            members = rounds.members_of(self.store, group.members)
            groups = rounds.groups_of_round(self.store, round_id)
            return [
                self._ask_one(
                    kind, group, member, [m.display_name for m in members if m.id != member.id], dates, now
                )
                for member in members
                # someone who left or was disabled since the introductions hears nothing more, and
                # someone rematched is asked about the new group only
                if member.status in ASKABLE
                and member.address
                and member.id not in group.outcomes
                and not rematch.moved_on(groups, group, member.id)
            ]

        return self._per_group_step(round_id, step, kind, ask)

    def send_nudges(self, round_id: str, now: datetime) -> list[str]:
        """In the meeting week: "have you found a time?" to each group nobody has told us anything
        about yet (we cannot see the members' mail to each other, so the nudge says to ignore it if
        they have already arranged to meet). Once per round."""

        def nudge(group: Group, dates: RoundDates) -> list[Notice]:
            members = [m for m in rounds.members_of(self.store, group.members) if m.status in ASKABLE]
            addresses = [m.address for m in members if m.address]
            if group.outcomes or len(addresses) < 2:
                return []
            host = next((m for m in members if m.id == group.host), members[0])
            values = {
                "names": [m.display_name for m in members],
                # who is who in To (mailer/compose.py writes "Name <address>" from these)
                "members": [{"name": m.display_name, "address": m.address} for m in members],
                "host": host.display_name,
                "round_id": round_id,
                "meeting_week_end": dates.meeting_week_end,
            }
            # One copy per member, as the introduction: each continues that member's own copy's thread.
            return [
                Notice(
                    "nudge",
                    [m.address],
                    values,
                    key=f"nudge:{group.key}:{m.id}",
                    round_id=round_id,
                    group_id=group.key,
                    shown_to=addresses,
                )
                for m in members
                if m.address
            ]

        return self._per_group_step(round_id, NUDGES, "nudge", nudge)

    def _per_group_step(
        self,
        round_id: str,
        step: RoundStep,
        kind: str,
        notices_for: Callable[[Group, RoundDates], list[Notice]],
    ) -> list[str]:
        """A step of an open round that sends something about each group, done once."""
        with self.store.transaction():
            stored = self._round(round_id)
            if step in stored.steps_done or stored.state is not RoundState.STARTED:
                return []
            dates = round_dates_for_id(self.calendar, round_id)
            notices = [
                n for group in rounds.groups_of_round(self.store, round_id) for n in notices_for(group, dates)
            ]
            self.queue(notices)
            self._mark(stored, step)
        log.info("round %s: %d %s emails queued", round_id, len(notices), kind)
        return [f"{round_id} {step}"]

    def rematch(self, round_id: str, now: datetime) -> list[str]:
        """At each pass of an open round (matcher/rematch.py): tell whoever lost their group's other
        members (once per group and member, by the outbox key), group the members waiting for a
        rematch and introduce each new group; after the meeting week, tell whoever still waits."""
        today = now.astimezone(self.calendar.zone).date()
        dates = round_dates_for_id(self.calendar, round_id)
        with self.store.transaction():
            if today > dates.meeting_week_end:
                waited = rematch.give_up(self.store, round_id)
                upcoming = {
                    "round_id": round_id,
                    "next_round_on": upcoming_round(self.calendar, self.store, now).starts_on,
                }
                key = f"rematch_none:{round_id}:{{}}"
                self.queue(
                    [self._to_member("rematch_none", m, now, key, upcoming) for m in waited if m.address]
                )
                return [f"{round_id} rematch: {len(waited)} told nobody else waited"] if waited else []
            notes = [
                self._to_member(
                    "stranded",
                    member,
                    now,
                    f"stranded:{group.key}:{{}}",
                    {"round_id": round_id, "meeting_week_end": dates.meeting_week_end},
                    round_id=round_id,
                    group_id=group.key,
                )
                for group, member in rematch.stranded(self.store, round_id, today)
                if member.address
            ]
            formed = rematch.pair_waiting(self.store, round_id, today)
            notes += [n for group in formed for n in self._intros(group, dates, now)]
            self.queue(notes)
        if formed:
            log.info("round %s: %d rematch groups introduced", round_id, len(formed))
            return [f"{round_id} rematch {g.number}" for g in formed]
        return []

    def close(self, round_id: str, now: datetime) -> list[str]:
        """Close the round: silence becomes "no reply"; ghosts are paused and told."""
        with self.store.transaction():
            stored = self._round(round_id)
            if CLOSED in stored.steps_done:
                return []
            report = rounds.close_round(self.store, round_id, now, ghost_rounds=self.limits.ghost_rounds)
            told = {"rounds": self.limits.ghost_rounds}
            key = f"ghost:{round_id}:{{}}"
            self.queue(
                [
                    self._to_member("ghost", g, now, key, told, round_id=round_id)
                    for g in report.ghosts
                    if g.address
                ]
            )
            self._mark(self._round(round_id), CLOSED)
        log.info(
            "round %s closed: %d met, %d missed, %d disputed, %d no reply, %d ghosts paused",
            round_id,
            report.met,
            report.missed,
            report.disputed,
            report.no_reply,
            len(report.ghosts),
        )
        return [f"{round_id} {CLOSED}"]

    def send_summary(self, round_id: str, now: datetime) -> list[str]:
        with self.store.transaction():
            stored = self._round(round_id)
            if SUMMARY in stored.steps_done:
                return []
            self.queue([self.summarise(self.store, round_id, now)])
            self._mark(stored, SUMMARY)
        log.info("round %s: summary queued for the organisers", round_id)
        return [f"{round_id} {SUMMARY}"]

    def resume_ended_pauses(self, today: date, now: datetime) -> list[str]:
        with self.store.transaction():
            resumed = rounds.resume_due_pauses(self.store, today)
            upcoming = upcoming_round(self.calendar, self.store, now).starts_on
            key = f"resumed:{{}}:{today.isoformat()}"
            self.queue(
                [
                    self._to_member("resumed", m, now, key, {"next_round_on": upcoming})
                    for m in resumed
                    if m.address
                ]
            )
        return [f"resumed {m.id}" for m in resumed]

    # -- building the emails

    def _intros(self, group: Group, dates: RoundDates, now: datetime) -> list[Notice]:
        """One introduction per member, each showing the whole group in To but sent to that member
        alone, with their own Message-ID, return path and List-Unsubscribe token: a reply to a copy
        proves only its own recipient's mailbox, so a partner cannot act for anyone else."""
        members = rounds.members_of(self.store, group.members)
        addresses = [m.address for m in members if m.address]
        host = next((m for m in members if m.id == group.host), members[0])
        values = {
            "round_id": dates.round_id,
            # The address names each person in the To of every copy (mailer/compose.py).
            "members": [
                {"name": m.display_name, "org": m.org, "about": m.about, "address": m.address}
                for m in members
            ],
            "host": host.display_name,
            "meeting_week_start": dates.meeting_week_start,
            "meeting_week_end": dates.meeting_week_end,
            "followup_on": dates.followup_on,
        }
        notices = []
        for member in members:
            if not member.address:
                continue
            token = self.member_token(self.store, member, now)
            notices.append(
                Notice(
                    kind="intro",
                    to=[member.address],
                    shown_to=addresses,
                    values=values,
                    key=f"intro:{group.key}:{member.id}",
                    round_id=group.round_id,
                    group_id=group.key,
                    unsubscribe_token=token,
                )
            )
        return notices

    def _sat_out(self, member: Member, started: Round, now: datetime) -> Notice:
        """A kind word to whoever nobody could be grouped with this round; it gives no reason, since
        the reason may be another person's private wish."""
        upcoming = upcoming_round(self.calendar, self.store, now).starts_on
        return Notice(
            kind="sit_out",
            to=[member.address],
            values={"name": member.display_name, "round_id": started.id, "next_round_on": upcoming},
            key=f"sit_out:{started.id}:{member.id}",
            unsubscribe_token=self.member_token(self.store, member, now),
        )

    def _ask_one(
        self, kind: str, group: Group, member: Member, partners: list[str], dates: RoundDates, now: datetime
    ) -> Notice:
        values = {
            "partners": partners,
            "round_id": group.round_id,
            "meeting_week_start": dates.meeting_week_start,
            "meeting_week_end": dates.meeting_week_end,
        }
        key = f"{kind}:{group.key}:{{}}"
        return self._to_member(kind, member, now, key, values, round_id=group.round_id, group_id=group.key)

    def _to_member(
        self, kind: str, member: Member, now: datetime, key: str, values: dict[str, object], **about: str
    ) -> Notice:
        """An email to one member (``key`` with ``{}`` for their id), with their List-Unsubscribe token."""
        return Notice(
            kind=kind,
            to=[member.address],
            values={"name": member.display_name, **values},
            key=key.format(member.id),
            unsubscribe_token=self.member_token(self.store, member, now),
            **about,  # type: ignore[arg-type]
        )

    def _round(self, round_id: str) -> Round:
        stored = self.store.get(Round, round_id)
        if stored is None:
            raise rounds.UnknownRound(f"no round {round_id}")
        return stored

    def _mark(self, stored: Round, step: RoundStep) -> None:
        stored.steps_done = [*stored.steps_done, step]
        self.store.put(stored)
