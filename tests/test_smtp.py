"""SMTP delivery to a real aiosmtpd sink: TLS, AUTH, reconnects, scripted answers, throttling."""

from __future__ import annotations

import email
import email.policy
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from mailer.settings import mail_settings_from_config
from mailer.smtp import SmtpSender, SmtpUnavailable, Throttled, xoauth2_string
from mailer.throttle import Throttle
from mailkit.servers import ServerSettingError, SmtpServer
from matcher.clock import FakeClock
from tests.servers import SilentServer, SmtpSink, TlsFiles, free_port

START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
FROM = "bounces@example.org"


def raw_message(n: int = 1) -> bytes:
    return (
        f"From: coffee@example.org\r\nTo: a@example.org\r\nSubject: test {n}\r\n"
        f"Message-ID: <m{n}@example.org>\r\n\r\nHello {n}\r\n"
    ).encode()


class Sleeper:
    """Records requested sleeps and moves the fake clock instead of waiting."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.clock.advance(timedelta(seconds=seconds))


def make_sender(sink: SmtpSink, **settings: object) -> tuple[SmtpSender, Sleeper]:
    options: dict = {"host": "127.0.0.1", "port": sink.port, "security": "none", "timeout": 5.0}
    options.update(settings)
    clock = FakeClock(START)
    sleeper = Sleeper(clock)
    return SmtpSender(
        SmtpServer(**{"per_minute": 0, "per_day": 0, **options}), clock=clock, sleep=sleeper
    ), sleeper


def test_a_batch_goes_through_one_connection(smtp_sink: SmtpSink) -> None:
    sender, _ = make_sender(smtp_sink)
    with sender:
        results = [sender.send(FROM, ["a@example.org", "b@example.org"], raw_message(i)) for i in range(5)]
    assert [r.status for r in results] == ["sent"] * 5
    assert sender.connections_opened == 1
    received = smtp_sink.wait_for(5)
    assert [m.mail_from for m in received] == [FROM] * 5
    assert received[0].rcpt_tos == ("a@example.org", "b@example.org")
    assert email.message_from_bytes(received[3].raw, policy=email.policy.default)["Subject"] == "test 3"


def test_lines_starting_with_a_dot_arrive_intact(smtp_sink: SmtpSink) -> None:
    raw = raw_message().replace(b"Hello 1\r\n", b".hidden\r\n.\r\n..two\r\nend")
    sender, _ = make_sender(smtp_sink)
    with sender:
        assert sender.send(FROM, ["a@example.org"], raw).status == "sent"
        assert sender.send(FROM, ["a@example.org"], raw_message(2)).status == "sent"
    first, second = smtp_sink.wait_for(2)
    assert first.raw == raw + b"\r\n"
    assert second.raw.endswith(b"Hello 2\r\n")


def test_the_commit_hook_runs_before_the_final_dot(smtp_sink: SmtpSink) -> None:
    seen: list[int] = []
    sender, _ = make_sender(smtp_sink)
    with sender:
        sender.send(
            FROM,
            ["a@example.org"],
            raw_message(),
            before_commit=lambda: seen.append(smtp_sink.count),
        )
    assert seen == [0] and smtp_sink.wait_for(1)


def test_a_failing_commit_hook_abandons_the_message(smtp_sink: SmtpSink) -> None:
    def journal_broken() -> None:
        raise RuntimeError("journal cannot be made durable")

    sender, _ = make_sender(smtp_sink)
    with pytest.raises(RuntimeError, match="durable"):
        sender.send(FROM, ["a@example.org"], raw_message(1), before_commit=journal_broken)
    assert sender.send(FROM, ["a@example.org"], raw_message(2)).status == "sent"
    sender.close()
    assert [m.raw.endswith(b"Hello 2\r\n") for m in smtp_sink.wait_for(1)] == [True]


def test_starttls_with_the_test_ca(make_smtp_sink: Callable[..., SmtpSink], test_tls: TlsFiles) -> None:
    sink = make_smtp_sink(starttls=True, require_starttls=True)
    sender, _ = make_sender(sink, security="starttls", ca_file=str(test_tls.ca_cert))
    with sender:
        assert sender.send(FROM, ["a@example.org"], raw_message()).status == "sent"
    assert sink.wait_for(1)[0].tls is True


def test_starttls_refuses_an_untrusted_certificate(make_smtp_sink: Callable[..., SmtpSink]) -> None:
    sink = make_smtp_sink(starttls=True, require_starttls=True)
    sender, _ = make_sender(sink, security="starttls")
    with pytest.raises(SmtpUnavailable, match="certificate verify failed.*set \\[smtp\\] ca_file"):
        sender.send(FROM, ["a@example.org"], raw_message())
    assert sink.count == 0


def test_implicit_tls_with_the_test_ca(make_smtp_sink: Callable[..., SmtpSink], test_tls: TlsFiles) -> None:
    sink = make_smtp_sink(implicit_tls=True)
    sender, _ = make_sender(sink, security="ssl", ca_file=str(test_tls.ca_cert))
    with sender:
        assert sender.send(FROM, ["a@example.org"], raw_message()).status == "sent"
    assert sink.wait_for(1)[0].tls is True


def test_implicit_tls_refuses_an_untrusted_certificate(
    make_smtp_sink: Callable[..., SmtpSink],
) -> None:
    sink = make_smtp_sink(implicit_tls=True)
    sender, _ = make_sender(sink, security="ssl")
    with pytest.raises(SmtpUnavailable, match="certificate verify failed.*set \\[smtp\\] ca_file"):
        sender.connect()


def test_starttls_required_but_not_offered(smtp_sink: SmtpSink) -> None:
    sender, _ = make_sender(smtp_sink, security="starttls")
    with pytest.raises(SmtpUnavailable, match="does not offer STARTTLS"):
        sender.connect()


def test_login_with_username_and_password(
    make_smtp_sink: Callable[..., SmtpSink], test_tls: TlsFiles
) -> None:
    sink = make_smtp_sink(starttls=True, auth=("mailer", "s3cret-Pa55"), auth_required=True)
    sender, _ = make_sender(
        sink,
        security="starttls",
        ca_file=str(test_tls.ca_cert),
        username="mailer",
        password="s3cret-Pa55",
    )
    with sender:
        assert sender.send(FROM, ["a@example.org"], raw_message()).status == "sent"
    assert sink.wait_for(1)[0].authenticated_as == "mailer"


def test_a_refused_login_never_shows_the_password(
    make_smtp_sink: Callable[..., SmtpSink], test_tls: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sink = make_smtp_sink(starttls=True, auth=("mailer", "right"), auth_required=True)
    settings = {
        "security": "starttls",
        "ca_file": str(test_tls.ca_cert),
        "username": "mailer",
        "password": "Wr0ng-Secret-Value",
    }
    sender, _ = make_sender(sink, **settings)
    with pytest.raises(SmtpUnavailable) as error:
        sender.send(FROM, ["a@example.org"], raw_message())
    assert "login as 'mailer'" in str(error.value) and "535" in str(error.value)
    assert "Wr0ng-Secret-Value" not in str(error.value)
    assert "Wr0ng-Secret-Value" not in caplog.text
    assert "Wr0ng-Secret-Value" not in repr(sender.settings)


def test_xoauth2_sends_the_token_in_the_sasl_format(
    make_smtp_sink: Callable[..., SmtpSink], test_tls: TlsFiles
) -> None:
    assert xoauth2_string("me@example.org", "tok") == "user=me@example.org\x01auth=Bearer tok\x01\x01"
    # The test sink speaks only LOGIN and PLAIN: XOAUTH2 is refused, cleanly and secret-free.
    sink = make_smtp_sink(starttls=True, auth=("mailer", "x"), auth_required=True)
    sender, _ = make_sender(
        sink,
        security="starttls",
        ca_file=str(test_tls.ca_cert),
        username="mailer",
        password="ya29.Secret-Token",
        auth="oauth2",
    )
    with pytest.raises(SmtpUnavailable, match="login as 'mailer' refused") as error:
        sender.connect()
    assert "ya29.Secret-Token" not in str(error.value)


def test_no_tls_only_on_this_machine() -> None:
    with pytest.raises(
        ServerSettingError, match="smtp.security: 'none' .* only for a server on this machine"
    ):
        SmtpServer(host="smtp.example.org", security="none")
    with pytest.raises(ServerSettingError, match="smtp.security"):
        SmtpServer(host="smtp.example.org", security="tls")


def test_a_dropped_connection_is_reopened(smtp_sink: SmtpSink) -> None:
    sender, _ = make_sender(smtp_sink)
    assert sender.send(FROM, ["a@example.org"], raw_message(1)).status == "sent"
    port = smtp_sink.port
    smtp_sink.stop()
    with SmtpSink(port=port) as again:
        result = sender.send(FROM, ["a@example.org"], raw_message(2))
        assert result.status == "sent"
        assert again.wait_for(1)[0].raw.endswith(b"Hello 2\r\n")
    assert sender.connections_opened == 2
    sender.close()


def test_421_closes_the_channel_and_the_sender_reconnects(smtp_sink: SmtpSink) -> None:
    sender, sleeper = make_sender(smtp_sink)
    smtp_sink.fail_next(1, 421)
    result = sender.send(FROM, ["a@example.org"], raw_message())
    assert result.status == "sent" and result.attempts == 2
    assert sender.connections_opened == 2
    assert smtp_sink.wait_for(1) and sleeper.calls == [1.0]
    sender.close()


def test_421_at_rcpt_keeps_every_recipient_for_the_retry(smtp_sink: SmtpSink) -> None:
    sender, _ = make_sender(smtp_sink)
    smtp_sink.fail_next(1, 421, stage="RCPT")
    result = sender.send(FROM, ["a@example.org", "b@example.org"], raw_message())
    assert result.status == "sent"
    assert smtp_sink.wait_for(1)[0].rcpt_tos == ("a@example.org", "b@example.org")
    sender.close()


def test_451_is_retried_quickly_then_succeeds(smtp_sink: SmtpSink) -> None:
    sender, sleeper = make_sender(smtp_sink)
    smtp_sink.fail_next(2, 451)
    result = sender.send(FROM, ["a@example.org"], raw_message())
    assert result.status == "sent" and result.attempts == 3
    assert sleeper.calls == [1.0, 2.0]
    assert smtp_sink.count == 1
    sender.close()


def test_persistent_451_is_deferred_for_a_later_run(smtp_sink: SmtpSink) -> None:
    sender, sleeper = make_sender(smtp_sink)
    smtp_sink.fail_next(3, 451)
    result = sender.send(FROM, ["a@example.org", "b@example.org"], raw_message())
    assert result.status == "deferred"
    assert result.deferred == ("a@example.org", "b@example.org")
    assert result.reason.startswith("451 ")
    assert result.bounced == () and smtp_sink.count == 0
    assert len(sleeper.calls) == 2
    sender.close()


def test_550_for_one_recipient_bounces_that_one_only(smtp_sink: SmtpSink) -> None:
    sender, _ = make_sender(smtp_sink)
    smtp_sink.fail_recipient("gone@example.org", 550)
    result = sender.send(FROM, ["a@example.org", "gone@example.org"], raw_message())
    assert result.status == "sent"
    assert result.accepted == ("a@example.org",)
    assert [(a, r[:3]) for a, r in result.bounced] == [("gone@example.org", "550")]
    assert smtp_sink.wait_for(1)[0].rcpt_tos == ("a@example.org",)
    sender.close()


def test_550_for_every_recipient_fails_the_message(smtp_sink: SmtpSink) -> None:
    sender, sleeper = make_sender(smtp_sink)
    smtp_sink.fail_recipient("gone@example.org", 550)
    result = sender.send(FROM, ["gone@example.org"], raw_message())
    assert result.status == "failed" and result.attempts == 1 and sleeper.calls == []
    assert result.bounced[0][0] == "gone@example.org" and "5.1.1" in result.bounced[0][1]
    # The connection is still usable for the next message.
    assert sender.send(FROM, ["a@example.org"], raw_message(2)).status == "sent"
    assert sender.connections_opened == 1
    sender.close()


def test_550_at_data_bounces_all_recipients(smtp_sink: SmtpSink) -> None:
    sender, _ = make_sender(smtp_sink)
    smtp_sink.fail_next(1, 554)
    result = sender.send(FROM, ["a@example.org", "b@example.org"], raw_message())
    assert result.status == "failed"
    assert [a for a, _ in result.bounced] == ["a@example.org", "b@example.org"]
    sender.close()


def test_a_temporary_refusal_of_one_recipient_defers_only_that_one(smtp_sink: SmtpSink) -> None:
    sender, _ = make_sender(smtp_sink)
    smtp_sink.fail_recipient("full@example.org", 452)
    result = sender.send(FROM, ["a@example.org", "full@example.org"], raw_message())
    assert result.status == "deferred"
    assert result.accepted == ("a@example.org",) and result.deferred == ("full@example.org",)
    assert smtp_sink.count == 1
    sender.close()


def test_an_unreachable_server_stops_the_batch() -> None:
    settings = SmtpServer(
        per_minute=0, per_day=0, host="127.0.0.1", port=free_port(), security="none", timeout=2.0
    )
    sender = SmtpSender(settings, clock=FakeClock(START), sleep=lambda s: None)
    with pytest.raises(SmtpUnavailable, match=f"cannot connect to SMTP server 127.0.0.1:{settings.port}"):
        sender.send(FROM, ["a@example.org"], raw_message())


def test_a_silent_server_times_out() -> None:
    with SilentServer() as silent:
        settings = SmtpServer(
            per_minute=0, per_day=0, host=silent.host, port=silent.port, security="none", timeout=0.3
        )
        sender = SmtpSender(settings, clock=FakeClock(START), sleep=lambda s: None)
        with pytest.raises(SmtpUnavailable, match="timed out|TimeoutError"):
            sender.connect()


def test_messages_per_minute_are_paced(smtp_sink: SmtpSink) -> None:
    sender, sleeper = make_sender(smtp_sink, per_minute=2)
    with sender:
        for i in range(5):
            assert sender.send(FROM, ["a@example.org"], raw_message(i)).status == "sent"
    assert smtp_sink.wait_for(5)
    assert sleeper.calls == [60.0, 60.0]


def test_the_daily_recipient_limit_stops_the_batch(smtp_sink: SmtpSink) -> None:
    sender, sleeper = make_sender(smtp_sink, per_day=3)
    with sender:
        assert sender.send(FROM, ["a@example.org", "b@example.org"], raw_message(1)).status == "sent"
        assert sender.send(FROM, ["c@example.org"], raw_message(2)).status == "sent"
        with pytest.raises(Throttled) as error:
            sender.send(FROM, ["d@example.org"], raw_message(3))
    assert error.value.wait_seconds == pytest.approx(86400)
    assert smtp_sink.count == 2 and sleeper.calls == []


def test_throttle_windows_slide() -> None:
    clock = FakeClock(START)
    throttle = Throttle(per_minute=30, per_day=100, clock=clock)
    for _ in range(30):
        assert throttle.wait_needed(1) == 0
        throttle.record(1)
        clock.advance(timedelta(seconds=1))
    assert throttle.wait_needed(1) == pytest.approx(30)  # the first send leaves the window at 60 s
    clock.advance(timedelta(seconds=30))
    assert throttle.wait_needed(1) == 0
    throttle.record(70, messages=1)
    assert throttle.wait_needed(1) == pytest.approx(86400 - 60)
    clock.advance(timedelta(days=1))
    assert throttle.wait_needed(100) == 0
    assert Throttle(0, 0, clock).wait_needed(10**6) == 0


def test_throttle_preloaded_history_counts() -> None:
    clock = FakeClock(START)
    throttle = Throttle(per_minute=0, per_day=10, clock=clock)
    throttle.preload([(START - timedelta(hours=23), 9, 3), (START - timedelta(hours=25), 50, 9)])
    assert throttle.wait_needed(1) == 0
    assert throttle.wait_needed(2) == pytest.approx(3600)


def test_settings_from_the_service_configuration() -> None:
    from unmentoring.config import Config, Programme, Smtp

    sandbox = mail_settings_from_config(Config())
    assert (sandbox.smtp.host, sandbox.smtp.security) == ("127.0.0.1", "none")
    assert sandbox.list_id == "unmentoring.localhost"
    assert sandbox.envelope_from == "unmentoring@localhost"
    production = mail_settings_from_config(
        Config(
            programme=Programme(name="Coffee & Chat", address="coffee@example.org"),
            smtp=Smtp(
                host="smtp.example.org",
                username="u",
                password="Pa55-Secret",
                per_minute=30,
                per_day=10000,
                envelope_from="bounces@example.org",
            ),
        )
    )
    assert production.list_id == "coffee-chat.example.org"
    assert production.smtp.security == "starttls" and production.smtp.per_day == 10000
    assert production.envelope_from == "bounces@example.org"
    assert production.smtp.password == "Pa55-Secret"
    assert "Pa55-Secret" not in repr(production) and "Pa55-Secret" not in repr(production.smtp)
