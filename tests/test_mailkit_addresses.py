"""mailkit.addresses: canonical form, our address and its plus-addresses, display names."""

from __future__ import annotations

import email.policy
from email.headerregistry import Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailkit.addresses import (
    canonical_address,
    has_control_characters,
    is_own_address,
    mailbox,
    mailbox_key,
    plain_mailbox,
    plus_address,
    plus_tag,
    return_path,
    return_path_token,
)
from mailkit.header_text import one_line

PROGRAMME = "UnMentoring@example.test"
_ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Bob@Example.COM", "bob@example.com"),
        ("  <bob@example.com>  ", "bob@example.com"),
        ("Bob Jones <Bob.Jones@Council.example.org>", "bob.jones@council.example.org"),
        ("mailto:ann@example.org", "ann@example.org"),
        ("coffee+Tok3n@unmentoring.example.org", "coffee+tok3n@unmentoring.example.org"),
        ("root@localhost", "root@localhost"),
        ("", ""),
        ("MAILER-DAEMON", ""),
        ("not an address", ""),
        ("bob@", ""),
        ("@example.com", ""),
        ("bob@@example.com", ""),
        ("bob smith@example.com", ""),
        ("bob@example..com", ""),
        ("bob@exa mple.com", ""),
        ("<>", ""),
    ],
)
def test_canonical_address(value, expected):
    assert canonical_address(value) == expected


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("unmentoring@example.test", True),
        ("UnMentoring@EXAMPLE.test", True),
        ("<unmentoring@example.test>", True),
        ("unmentoring+anything@example.test", True),
        ("unmentoring+a+b@example.test", True),
        ("unmentoring@other.test", False),
        ("unmentoringx@example.test", False),
        ("x+unmentoring@example.test", False),
        ("unmentoring+x@example.test.evil", False),
        ("unmentoring", False),
        ("", False),
    ],
)
def test_programme_address_matching(address: str, expected: bool) -> None:
    assert is_own_address(address, PROGRAMME) is expected


def test_plus_tag_names_the_tag_of_our_plus_address() -> None:
    assert plus_tag("unmentoring@example.test", PROGRAMME) == ""
    assert plus_tag("UnMentoring+Confirm-Ab12@Example.test", PROGRAMME) == "confirm-ab12"
    assert plus_tag("unmentoring+bounce-x+y@example.test", PROGRAMME) == "bounce-x+y"
    assert plus_tag("someone+x@example.test", PROGRAMME) is None


def test_plus_address_round_trip() -> None:
    address = plus_address(PROGRAMME, "abc234")
    assert address == "UnMentoring+abc234@example.test"
    assert plus_tag(address.upper(), PROGRAMME) == "abc234"
    assert plus_tag("unmentoring+abc234@elsewhere.example", PROGRAMME) is None
    assert plus_tag("other+abc234@example.test", PROGRAMME) is None


def test_return_path_names_its_token_and_nothing_else_does() -> None:
    path = return_path(PROGRAMME, "k7zq")
    assert path == "UnMentoring+bounce-k7zq@example.test"
    assert return_path_token(path.lower(), PROGRAMME) == "k7zq"
    assert return_path_token(PROGRAMME, PROGRAMME) is None
    assert return_path_token("unmentoring+k7zq@example.test", PROGRAMME) is None
    assert return_path_token("unmentoring+bounce-@example.test", PROGRAMME) is None
    assert return_path_token("unmentoring+bounce-k7zq@elsewhere.example", PROGRAMME) is None


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("Ann@Example.org", "ann@example.org"),
        ("ann+1@example.org", "ann@example.org"),
        ("ANN+2+x@example.org", "ann@example.org"),
        ("+x@example.org", "+x@example.org"),
        ("not an address", ""),
    ],
)
def test_mailbox_key_counts_plus_variants_as_one_mailbox(address: str, expected: str) -> None:
    assert mailbox_key(address) == expected


def test_own_addresses_may_be_several() -> None:
    own = frozenset({"a@example.test", "b@example.test"})
    assert is_own_address("b+x@example.test", own)
    assert not is_own_address("c@example.test", own)
    assert not is_own_address("a@example.test", frozenset())


@pytest.mark.parametrize("text", ["a\r\nBcc: x@y", "a\nb", "nul\x00", "del\x7f", "tab\t"])
def test_control_characters_are_found(text: str) -> None:
    assert has_control_characters(text)
    assert not has_control_characters(one_line(text)) and "\n" not in one_line(text)


def test_one_line_collapses_runs_of_space() -> None:
    assert one_line("  Ann \r\n\t Example  ") == "Ann Example"
    assert one_line("") == ""


@pytest.mark.parametrize(
    "name", ["Ann Example", 'Ann "The Boss" Example', "Example, Ann", "Zoë Ünal", "a\r\nBcc: evil@x.test"]
)
def test_a_written_mailbox_reads_back_as_its_name_and_address(name: str) -> None:
    """However odd the name, the To header holds one mailbox with that (one-line) name."""
    msg = email.message.EmailMessage(policy=email.policy.SMTP)
    msg["To"] = mailbox(one_line(name), "ann@example.org")
    reread = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    (address,) = reread["To"].addresses
    assert (address.display_name, address.addr_spec) == (one_line(name), "ann@example.org")
    assert reread["Bcc"] is None


_ATOM = st.text(alphabet=_ATEXT, min_size=1, max_size=6)
_DOT_ATOM = st.lists(_ATOM, min_size=1, max_size=3).map(".".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(_ATOM, max_size=3).map(" ".join), _DOT_ATOM, _DOT_ATOM)
def test_plain_mailboxes_read_and_write_as_the_email_package_does(name: str, local: str, domain: str) -> None:
    text = f"{name} <{local}@{domain}>" if name else f"{local}@{domain}"
    (parsed,) = email.policy.default.header_factory("to", text).addresses
    expected = None if "=?" in text else (parsed.display_name, parsed.addr_spec)  # encoded words: parser
    assert plain_mailbox(text) == expected
    written = mailbox(name, f"{local}@{domain}")
    assert written == Address(display_name=name, addr_spec=f"{local}@{domain}")


@pytest.mark.parametrize("text", ["=?utf-8?q?Ann?= <a@b.c>", '"Ann" <a@b.c>', "a@b.c, d@e.f", "Ann  <a@b.c>"])
def test_anything_but_one_plain_mailbox_is_left_to_the_parser(text: str) -> None:
    assert plain_mailbox(text) is None
