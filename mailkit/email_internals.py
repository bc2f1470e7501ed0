"""Where we reach into the ``email`` package's internals for speed. Checked against CPython 3.11.7's
``email`` package (Lib/email/headerregistry.py, policy.py, generator.py); tests/test_mailkit_internals.py
fails loudly when a name or signature used here changes, and tests/test_parse.py and tests/test_compose.py
check that the results equal the stock package's.

- ``CachingHeaderRegistry``: the stock ``HeaderRegistry`` creates a new class (``type(...)``) for every
  header it builds and parses every value afresh; reading a MIME tree asks for the same Content-Type a dozen
  times per part, and every email we write repeats From, List-Id, Auto-Submitted... Header objects are
  immutable, so each header name's class is made once and each distinct (name, value) is built once.
- ``CachingPolicy``: fetches the header object of each distinct raw value once (a parsed message asks for
  its Content-Type over and over), and folds each header object once (a shared header is not re-folded per
  email), keeping the result in the header object's ``__dict__``, keyed by what folding depends on.
- ``BoundaryGenerator``: ``BytesGenerator`` without a regular expression compiled per multipart boundary.
"""

from __future__ import annotations

import functools
import random
import re
import sys
from email.generator import BytesGenerator
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.policy import EmailPolicy
from typing import Any

HEADER_CACHE_SIZE = 4096
_FOLDED = "_mailkit_folded"  # the attribute CachingPolicy keeps a header's folded bytes in


class CachingHeaderRegistry(HeaderRegistry):
    """``HeaderRegistry`` that makes one class per header name and one header object per distinct value
    (text, or a tuple of ``Address`` objects: an address header is fully given by its addresses' parts)."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}
        self._from_text = functools.lru_cache(maxsize=HEADER_CACHE_SIZE)(super().__call__)
        self._from_addresses = functools.lru_cache(maxsize=HEADER_CACHE_SIZE)(self._addresses_header)

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls

    def __call__(self, name: str, value: Any) -> BaseHeader:
        if type(value) is str:
            return self._from_text(name, value)
        if type(value) is Address:
            value = (value,)  # what AddressHeader.parse makes of a single address
        if type(value) is tuple and all(type(a) is Address for a in value):
            parts = tuple((a.display_name, a.username, a.domain) for a in value)
            return self._from_addresses(name, parts)
        return super().__call__(name, value)

    def _addresses_header(self, name: str, parts: tuple[tuple[str, str, str], ...]) -> BaseHeader:
        addresses = tuple(Address(display_name=d, username=u, domain=h) for d, u, h in parts)
        return super().__call__(name, addresses)


class CachingPolicy(EmailPolicy):
    """``EmailPolicy`` that makes the header object of a raw value once and folds each header object once.
    Folding depends only on the header and on the line length, line separator and utf8 setting, which key
    the remembered result."""

    def header_fetch_parse(self, name: str, value: str) -> BaseHeader:
        if hasattr(value, "name"):
            return value  # type: ignore[return-value]
        return _fetched(self.header_factory, name, value)

    def fold_binary(self, name: str, value: Any) -> bytes:
        if not hasattr(value, "name"):
            return super().fold_binary(name, value)
        key = (self.linesep, self.max_line_length, self.utf8)
        remembered = value.__dict__.get(_FOLDED)
        if remembered is not None and remembered[0] == key:
            return remembered[1]
        folded = super().fold_binary(name, value)
        value.__dict__[_FOLDED] = (key, folded)
        return folded


@functools.lru_cache(maxsize=HEADER_CACHE_SIZE)
def _fetched(factory: HeaderRegistry, name: str, value: str) -> BaseHeader:
    """What ``EmailPolicy.header_fetch_parse`` makes of a raw value: line breaks removed, then parsed."""
    return factory(name, "".join(_LINESEP.split(value)))


_LINESEP = re.compile(r"\n|\r")  # as email.policy's linesep_splitter


class BoundaryGenerator(BytesGenerator):
    """The stock generator checks that a new (random) boundary occurs nowhere in the parts with a regex made
    for that boundary, which is never in the regex cache: that compilation cost more than writing the parts.
    A plain substring test gives the same answer when the boundary is absent (the regex needs the substring to
    match); only a text that holds it takes the stock path, with the same boundary."""

    @classmethod
    def _make_boundary(cls, text: Any = None) -> str:
        token = random.randrange(sys.maxsize)
        boundary = "=" * 15 + f"{token:0{_BOUNDARY_DIGITS}d}" + "=="
        if text is None:
            return boundary
        marker = "--" + boundary
        if (marker.encode("ascii") if isinstance(text, bytes) else marker) not in text:
            return boundary
        candidate, counter = boundary, 0
        while cls._compile_re("^--" + re.escape(candidate) + "(--)?$", re.MULTILINE).search(text):
            candidate = f"{boundary}.{counter}"
            counter += 1
        return candidate


_BOUNDARY_DIGITS = len(repr(sys.maxsize - 1))  # as email.generator pads its boundary tokens
