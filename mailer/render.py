"""Rendering a notice into a subject, a plain-text body and an HTML body (jinja2 templates).

Every kind has ``mailer/templates/<kind>.txt`` (plain text, no escaping) and ``<kind>.html``
(autoescaped), both extending a shared base that carries the footer (how to pause, how to leave).
The templates ship inside the package (loaded with jinja2's PackageLoader, so an installed wheel
renders without the source tree). An organiser's folder (``[programme] templates_dir``) is searched
first: any file there replaces the shipped one of the same name, the rest fall back.
The subject is the ``{% block subject %}`` of the .txt template: one place, one way. Undefined names
raise (StrictUndefined), and the values a kind needs are checked before rendering, so a caller that
forgets one gets an error naming the template and the value instead of an email with a hole in it.

The values each kind expects (``Notice.values``; dates are ``datetime.date``, names may be ""):

=================  ================================================================================
kind               values
=================  ================================================================================
confirm_join       name ("" until confirmed: greeted by address), token, expires_on
welcome            name, next_round_on, frequency (1..3)
already_active     name, next_round_on
confirm_leave      name, token, expires_on
goodbye            name
paused             name, until (date, or None = until they say resume)
resumed            name, next_round_on
frequency_changed  name, frequency
profile_updated    name, org, about
status             name, status, org, about, frequency, pause_until (date/None), next_round_on,
                   rounds, met
help               reason ("" or a sentence saying what was not understood), commands (list of
                   {usage, meaning}: the declared commands, inbox/commands/); optional: quoted (the
                   line we could not read), suggestion (the command they probably meant)
not_member         command
no_group           command
my_data            data (matcher/members.py member_data), attachments ({file name: its JSON})
confirm_forget     name, token, expires_on
forgotten          (none)
confirm_change     name, change (what confirming does, in our words), token, expires_on
intro              round_id, members (list of {name, org, about[, address]}), host (name),
                   meeting_week_start, meeting_week_end, followup_on
followup           name, partners (list of names), round_id, meeting_week_start, meeting_week_end
reminder           name, partners, round_id
nudge              names (list), host, round_id, meeting_week_end: to a group nobody has heard from
ghost              name, rounds (int)
sit_out            name, round_id, next_round_on: nobody could be grouped with them this round
stranded           name, round_id, meeting_week_end: their group lost its other members mid-round
rematch            name, round_id, outcome ("waiting", "too_early", "too_late"), meeting_week_end,
                   middle (the middle of the meeting week): the answer to "rematch"
rematch_none       name, round_id, next_round_on: nobody else waited for a rematch this round
meet_again         name, partners (list of names), wanted (False: the wish was taken back)
never_pair         name, who (the name or address they wrote), removed (False: set, True: undone)
bounce_disabled    address, name, score
unread             name, address, at (datetime), subject, text, reason, group ("" or a group key):
                   a message we could not read, forwarded to the organisers
summary            figures (list of (label, value)), rounds (rows of id, groups, met, missed,
                   no_reply[, disputed]: mappings or tuples in that order), reasons (list of str),
                   ghosts (list of names, or mappings with name/address), disabled (likewise),
                   images (content-ids among "growth", "network", "met_network");
                   optional: round_id (default: the last row's id), disputed (list of str: who
                   said what in each disputed group), wrote (list of {name, address, at, text}:
                   messages we could not read), wrote_more (how many more were left out)
=================  ================================================================================

The mailer adds the programme-level values itself: ``programme`` (name, address, organisers) and
``to`` (the recipient addresses). An intro member given with an ``address`` also names that person
in the To header.
"""

from __future__ import annotations

import json
import re
import textwrap
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

from mailer.settings import MailSettings

# The shipped templates, as a resource of this package (a real folder in a normal install).
SHIPPED_TEMPLATES = resources.files("mailer") / "templates"


def shipped_loader() -> jinja2.PackageLoader:
    return jinja2.PackageLoader("mailer", "templates")


class RenderError(ValueError):
    """A notice that cannot be rendered: names the template (and its line, when known) and what is wrong.

    ``path`` is the organiser's file when the fault is in an override, else None (a shipped template)."""

    def __init__(
        self, problem: str, *, template: str = "", line: int | None = None, path: Path | None = None
    ) -> None:
        where = f"template {template!r}" + (f" line {line}" if line else "") + ": " if template else ""
        super().__init__(where + problem)
        self.problem = problem
        self.template = template
        self.line = line
        self.path = path


@dataclass(frozen=True)
class KindSpec:
    required: tuple[str, ...]
    audience: str = "member"  # member | guest | organiser: which footer the mail carries
    optional: Mapping[str, Any] = field(default_factory=dict)


KINDS: Mapping[str, KindSpec] = {
    "confirm_join": KindSpec(("name", "token", "expires_on"), "guest"),
    "welcome": KindSpec(("name", "next_round_on", "frequency")),
    "already_active": KindSpec(("name", "next_round_on")),
    "confirm_leave": KindSpec(("name", "token", "expires_on")),
    "goodbye": KindSpec(("name",), "guest"),
    "paused": KindSpec(("name", "until")),
    "resumed": KindSpec(("name", "next_round_on")),
    "frequency_changed": KindSpec(("name", "frequency")),
    "profile_updated": KindSpec(("name", "org", "about")),
    "status": KindSpec(
        (
            "name",
            "status",
            "org",
            "about",
            "frequency",
            "pause_until",
            "next_round_on",
            "rounds",
            "met",
        )
    ),
    "help": KindSpec(("reason", "commands"), optional={"quoted": "", "suggestion": ""}),
    "not_member": KindSpec(("command",), "guest"),
    "no_group": KindSpec(("command",)),
    "my_data": KindSpec(("data",)),
    "confirm_forget": KindSpec(("name", "token", "expires_on")),
    "forgotten": KindSpec((), "guest"),
    "confirm_change": KindSpec(("name", "change", "token", "expires_on")),
    # "group": replies go to the partners, so the footer links to the programme address instead. No
    # token in the text: a partner's reply-all quotes it (the List-Unsubscribe header carries it).
    "intro": KindSpec(
        ("round_id", "members", "host", "meeting_week_start", "meeting_week_end", "followup_on"),
        "group",
    ),
    "followup": KindSpec(("name", "partners", "round_id", "meeting_week_start", "meeting_week_end")),
    "reminder": KindSpec(("name", "partners", "round_id")),
    "nudge": KindSpec(("names", "host", "round_id", "meeting_week_end")),
    "ghost": KindSpec(("name", "rounds")),
    "sit_out": KindSpec(("name", "round_id", "next_round_on")),
    "stranded": KindSpec(("name", "round_id", "meeting_week_end")),
    "rematch": KindSpec(("name", "round_id", "outcome", "meeting_week_end", "middle")),
    "rematch_none": KindSpec(("name", "round_id", "next_round_on")),
    "meet_again": KindSpec(("name", "partners", "wanted")),
    "never_pair": KindSpec(("name", "who", "removed")),
    "bounce_disabled": KindSpec(("address", "name", "score"), "organiser"),
    "unread": KindSpec(("name", "address", "at", "subject", "text", "reason", "group"), "organiser"),
    "summary": KindSpec(
        ("figures", "rounds", "reasons", "ghosts", "disabled", "images"),
        "organiser",
        {"round_id": None, "disputed": [], "wrote": [], "wrote_more": 0},
    ),
}

LIST_VALUES: Mapping[str, tuple[str, ...]] = {
    "help": ("commands",),
    "followup": ("partners",),
    "reminder": ("partners",),
    "nudge": ("names",),
    "meet_again": ("partners",),
    "summary": ("figures", "rounds", "reasons", "ghosts", "disabled", "images", "disputed", "wrote"),
}
ROUND_COLUMNS = ("id", "groups", "met", "missed", "no_reply", "disputed")
IMAGE_CAPTIONS = {
    "growth": "Members over time; conversations held and the met rate per round",
    "network": (
        "This round: who met (green), who did not meet (red), did not confirm (red, dashed), disputed (amber)"
    ),
    "met_network": "Who has met whom so far (above 60 people: conversations between organisations)",
}
WRAP_WIDTH = 76
_NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


class Renderer:
    """Renders notices with the shipped templates, overridden by those in ``settings.templates_dir``
    (if set); each compiled once."""

    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings
        shipped = shipped_loader()
        self._override = settings.templates_dir  # the organiser's folder, searched first
        loader: jinja2.BaseLoader = (
            shipped
            if self._override is None
            else jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(self._override)), shipped])
        )
        common = dict(
            loader=loader,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            auto_reload=False,
        )
        self._text = jinja2.Environment(autoescape=False, **common)  # plain text: nothing to escape
        self._html = jinja2.Environment(autoescape=True, **common)
        for env in (self._text, self._html):
            env.filters.update(FILTERS)
        self._programme = {
            "name": settings.programme_name,
            "address": settings.programme_address,
            "organisers": list(settings.organisers),
        }

    def render(self, kind: str, values: Mapping[str, Any], *, to: Sequence[str] = ()) -> Rendered:
        spec = KINDS.get(kind)
        if spec is None:
            raise RenderError(f"unknown notice kind {kind!r}; known kinds: {', '.join(sorted(KINDS))}")
        missing = [name for name in spec.required if name not in values]
        if missing:
            raise RenderError(
                f"template {kind!r} needs value {missing[0]!r}"
                + (f" (also missing: {', '.join(missing[1:])})" if missing[1:] else "")
            )
        _check_shapes(kind, values)
        context: dict[str, Any] = {**spec.optional, **values}
        if kind == "summary":
            context = _prepare_summary(context)
        elif kind == "intro":
            context["names"] = [member["name"] for member in context["members"]]
        context.update(programme=self._programme, to=list(to), audience=spec.audience, kind=kind)
        text_template = self._template(self._text, f"{kind}.txt")
        html_template = self._template(self._html, f"{kind}.html")
        if "subject" not in text_template.blocks:
            raise self._located(None, f"{kind}.txt", "defines no {% block subject %}")
        name = f"{kind}.txt"
        try:
            try:
                subject_ctx = text_template.new_context(context)
                subject = _one_line("".join(text_template.blocks["subject"](subject_ctx)))
            except Exception:
                # a block called directly skips jinja's traceback rewriting, which gives template lines
                self._text.handle_exception()
            text = text_template.render(context)
            name = f"{kind}.html"
            html = html_template.render(context, subject=subject)
        except jinja2.UndefinedError as exc:
            raise self._located(exc, name, f"missing value: {exc}") from None
        except jinja2.TemplateError as exc:  # a broken parent or include, found while rendering
            raise self._located(exc, name, exc.message or exc.__class__.__name__) from None
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise self._located(exc, name, f"bad value: {exc.__class__.__name__}: {exc}") from None
        if not subject:
            raise self._located(None, f"{kind}.txt", "rendered an empty subject")
        return Rendered(subject=subject, text=_tidy_text(text), html=html)

    def compile(self, name: str) -> None:
        """Load and compile one template (syntax errors surface here, with their line)."""
        self._template(self._text, name)

    def _template(self, env: jinja2.Environment, name: str) -> jinja2.Template:
        try:
            return env.get_template(name)
        except jinja2.TemplateNotFound as exc:
            where = "the shipped templates" + (f" or {self._override}" if self._override else "")
            raise self._located(exc, name, f"not found in {where}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise self._located(exc, name, exc.message or "syntax error") from None

    def _located(self, exc: Exception | None, fallback: str, problem: str) -> RenderError:
        """The template file and line a fault comes from. A syntax error carries them; for a runtime error
        jinja rewrites the traceback so that template frames carry the template's file and line."""
        name, line = fallback, None
        if isinstance(exc, jinja2.TemplateSyntaxError):
            name, line = exc.name or fallback, exc.lineno
        elif exc is not None:
            for frame in reversed(traceback.extract_tb(exc.__traceback__)):
                found = self._template_name(frame.filename)
                if found:
                    name, line = found, frame.lineno
                    break
        override = self._override / name if self._override is not None else None
        path = override if override is not None and override.is_file() else None
        return RenderError(problem, template=name, line=line, path=path)

    def _template_name(self, filename: str) -> str | None:
        roots = [Path(str(SHIPPED_TEMPLATES))] + ([self._override] if self._override is not None else [])
        for root in roots:
            try:
                return Path(filename).relative_to(root).as_posix()
            except ValueError:
                continue
        return None


# -- helpers for the templates


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        # A date or a timestamp as stored (matcher/model.py writes both as ISO 8601).
        return datetime.fromisoformat(value).date()
    raise TypeError(f"expected a date, got {type(value).__name__} {value!r}")


def long_date(value: Any) -> str:
    """Monday 7 December 2026."""
    d = _as_date(value)
    return f"{d:%A} {d.day} {d:%B %Y}"


def short_date(value: Any) -> str:
    """Monday 7 December."""
    d = _as_date(value)
    return f"{d:%A} {d.day} {d:%B}"


def every(frequency: Any) -> str:
    """every month / every two months / every three months."""
    n = int(frequency)
    return "every month" if n == 1 else f"every {_NUMBER_WORDS.get(n, str(n))} months"


def period(frequency: Any) -> str:
    """The time a member has for one conversation: this month / in the next two months..."""
    n = int(frequency)
    return "this month" if n == 1 else f"in the next {_NUMBER_WORDS.get(n, str(n))} months"


def number_word(n: Any) -> str:
    return _NUMBER_WORDS.get(int(n), str(n))


def display(name: Any, fallback: str = "a fellow member") -> str:
    """A person's name for running text; an empty name becomes a neutral phrase."""
    text = _one_line(str(name or ""))
    return text or fallback


def join_names(names: Sequence[Any], fallback: str = "a fellow member") -> str:
    """A, A and B, A, B and C."""
    shown = [display(n, fallback) for n in names]
    if not shown:
        return ""
    if len(shown) == 1:
        return shown[0]
    return ", ".join(shown[:-1]) + " and " + shown[-1]


def greeting(name: Any) -> str:
    text = _one_line(str(name or ""))
    return f"Hi {text}," if text else "Hello,"


def mailto(address: Any, subject: Any) -> str:
    """A mailto: link that writes ``subject`` to ``address`` (RFC 6068)."""
    return f"mailto:{address}?subject={quote(str(subject), safe='')}"


def pretty_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def describe(item: Any) -> str:
    """A ghost or disabled entry in the summary: a name, an address, or a mapping holding them."""
    if isinstance(item, Mapping):
        name = _one_line(str(item.get("name") or ""))
        address = _one_line(str(item.get("address") or ""))
        if name and address:
            return f"{name} <{address}>"
        return name or address or "(erased)"
    return _one_line(str(item))


def one_line(value: Any) -> str:
    return _one_line(str(value))


FILTERS = {
    "long_date": long_date,
    "short_date": short_date,
    "every": every,
    "period": period,
    "number_word": number_word,
    "display": display,
    "join_names": join_names,
    "greeting": greeting,
    "mailto": mailto,
    "pretty_json": pretty_json,
    "describe": describe,
    "one_line": one_line,
}


def _check_shapes(kind: str, values: Mapping[str, Any]) -> None:
    """Nested values the templates walk into: name the exact place that is wrong."""
    if kind == "intro":
        members = values["members"]
        if isinstance(members, str | bytes) or not isinstance(members, Sequence) or not members:
            raise RenderError(f"template 'intro' needs value 'members' as a non-empty list, got {members!r}")
        for i, member in enumerate(members):
            if not isinstance(member, Mapping):
                raise RenderError(f"template 'intro' needs members[{i}] as a mapping, got {member!r}")
            for key in ("name", "org", "about"):
                if key not in member:
                    raise RenderError(f"template 'intro' needs value 'members[{i}].{key}'")
    for key in LIST_VALUES.get(kind, ()):
        if key in values and (isinstance(values[key], str | bytes) or not _is_list(values[key])):
            raise RenderError(f"template {kind!r} needs value {key!r} as a list, got {values[key]!r}")


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence | set | frozenset)


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _tidy_text(text: str) -> str:
    """Trailing spaces off, runs of blank lines collapsed, prose reflowed by paragraph.

    The templates break their lines where it reads well in the source; a reader's line is the
    paragraph's, filled to ``WRAP_WIDTH`` (a name or date longer than the sample would otherwise leave
    "(in" / "the" / "subject" on three lines). Preformatted lines keep their breaks: indented lines
    (lists, quotes, JSON), table rows (two spaces inside the text) and the footer below "-- ", whose
    lines are wrapped one by one."""
    out: list[str] = []
    paragraph: list[str] = []
    in_footer = False
    for line in text.splitlines():
        # "-- " is the signature separator: mail clients and reply parsers drop what follows it.
        line = line if line == "-- " else line.rstrip()
        if is_prose(line) and not in_footer:
            paragraph.append(line)
            continue
        out.extend(fill(" ".join(paragraph)))
        paragraph = []
        in_footer = in_footer or line == "-- "
        out.extend(fill(line) if in_footer and is_prose(line) else [line])
    out.extend(fill(" ".join(paragraph)))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n") + "\n"


def is_prose(line: str) -> bool:
    """A line of running text: not blank, not indented, not a table row, not the signature separator."""
    return bool(line.strip()) and not line[:1].isspace() and "  " not in line and line != "-- "


def fill(paragraph: str, width: int = WRAP_WIDTH) -> list[str]:
    """The paragraph's lines, filled to ``width``; a last line of one word takes a second one along
    (a word left alone on the last line reads as an accident)."""
    lines = textwrap.wrap(paragraph, width, break_long_words=False, break_on_hyphens=False)
    if len(lines) > 1 and " " not in lines[-1] and " " in lines[-2]:
        head, moved = lines[-2].rsplit(" ", 1)
        lines[-2:] = [head, f"{moved} {lines[-1]}"]
    return lines


def _prepare_summary(context: dict[str, Any]) -> dict[str, Any]:
    """Rows as mappings or tuples, figures as pairs or mappings: callers stay simple."""
    rows = []
    for row in context["rounds"]:
        if isinstance(row, Mapping):
            cells = {c: row.get(c, "") for c in ROUND_COLUMNS}
        else:
            cells = dict(zip(ROUND_COLUMNS, row, strict=False))
            cells.update({c: "" for c in ROUND_COLUMNS if c not in cells})
        cells["met_rate"] = _rate(cells["met"], cells["groups"])
        cells["cells"] = [cells[c] for c in ROUND_COLUMNS] + [cells["met_rate"]]
        rows.append(cells)
    figures = []
    for figure in context["figures"]:
        if isinstance(figure, Mapping):
            figures.append((str(figure.get("label", "")), figure.get("value", "")))
        else:
            label, value = figure
            figures.append((str(label), value))
    images = [str(name) for name in context["images"]]
    round_id = context.get("round_id") or (rows[-1]["id"] if rows else "")
    return {
        **context,
        "rounds": rows,
        "figures": figures,
        "images": [(name, IMAGE_CAPTIONS.get(name, name.replace("_", " "))) for name in images],
        "round_id": round_id,
        "label_width": max([len(label) for label, _ in figures] + [10]),
        "attention": [
            {**a, "row": [a.get("who", ""), a.get("why", ""), a.get("done", "")]}
            for a in context.get("attention") or []
        ],
    }


def _rate(part: Any, whole: Any) -> str:
    try:
        p, w = int(part), int(whole)
    except (TypeError, ValueError):
        return "-"
    return f"{round(100 * p / w)}%" if w > 0 else "-"
