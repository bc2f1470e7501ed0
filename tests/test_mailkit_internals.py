"""The email package internals that mailkit/email_internals.py relies on are still there, as they were
in Python 3.11.7. A failure here means the library changed underneath: re-check that module."""

from __future__ import annotations

import email
import email.policy
import inspect
from email.generator import BytesGenerator, Generator
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy

from mailkit import policy
from mailkit.email_internals import BoundaryGenerator, CachingHeaderRegistry


def params(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_the_generator_still_makes_its_boundary_in_a_classmethod_we_override() -> None:
    assert isinstance(inspect.getattr_static(Generator, "_make_boundary"), classmethod)
    assert params(Generator._make_boundary) == ["text"]
    assert isinstance(inspect.getattr_static(Generator, "_compile_re"), classmethod)
    assert params(Generator._compile_re) == ["s", "flags"]
    assert "self._make_boundary(" in inspect.getsource(Generator._handle_multipart)
    assert issubclass(BoundaryGenerator, BytesGenerator)
    stock_boundary = Generator._make_boundary()
    assert len(BoundaryGenerator._make_boundary()) == len(stock_boundary)


def test_the_header_registry_and_policy_hooks_keep_their_signatures() -> None:
    assert params(HeaderRegistry.__call__) == ["self", "name", "value"]
    assert params(HeaderRegistry.__getitem__) == ["self", "name"]
    assert params(EmailPolicy.fold_binary) == ["self", "name", "value"]
    assert params(EmailPolicy.header_fetch_parse) == ["self", "name", "value"]
    # CachingPolicy.header_fetch_parse does what the stock one does, before parsing: remove line breaks.
    assert email.policy.linesep_splitter.pattern == r"\n|\r"
    assert "linesep_splitter.split(value)" in inspect.getsource(EmailPolicy.header_fetch_parse)
    # CachingPolicy keeps a header's folded bytes in the header object's __dict__.
    header = email.policy.default.header_factory("Subject", "hello")
    assert isinstance(header, BaseHeader) and hasattr(header, "__dict__") and header.name == "Subject"


def test_cached_headers_are_the_stock_ones() -> None:
    registry = CachingHeaderRegistry()
    for name, value in [("Subject", "Re: hi"), ("To", "Ann <a@example.org>, b@example.org"), ("Date", "x")]:
        ours, stock = registry(name, value), email.policy.default.header_factory(name, value)
        assert (str(ours), type(ours).__mro__[1:]) == (str(stock), type(stock).__mro__[1:])
        assert registry(name, value) is ours  # made once


def test_a_message_written_with_our_policy_reads_back_as_written() -> None:
    msg = EmailMessage(policy=policy.SMTP)
    msg["Subject"] = ("Caf\u00e9 " * 30).strip()
    msg["To"] = "Zo\u00eb <zoe@example.org>"
    msg.set_content("Hello\n" * 3)
    msg.add_alternative("<p>Hello</p>", subtype="html")
    raw = policy.message_bytes(msg)
    assert raw.isascii() and b"\n" not in raw.replace(b"\r\n", b"")
    reread = email.message_from_bytes(raw, policy=email.policy.default)
    assert reread["Subject"] == ("Caf\u00e9 " * 30).strip()
    assert reread.get_body(("plain",)).get_content().splitlines() == ["Hello"] * 3
