"""The terminal view: text from outside (transcripts, theses, engine names, reasons, messages)
is printed as it is, never read as Rich markup (issue 9, finding 11)."""

from __future__ import annotations

import io
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from cluelypro.cli import console as ui
from cluelypro.metrics.events import Asr, Error, ProviderSkipped, Thesis, TimelineEvent
from cluelypro.metrics.summary import QuestionChain
from cluelypro.metrics.timeline import Record
from text_strategies import any_text

MARKUP_PIECES = [
    "[",
    "]",
    "[/",
    "[/]",
    "[/INST]",
    "[bold]",
    "[/bold]",
    "[red]",
    "[link=x]",
    "[@click]",
    "\\",
    ":smile:",
    "[dim",
    "=",
    "#",
    "]]",
]
markup_like = st.lists(
    st.sampled_from(MARKUP_PIECES) | st.text(string.ascii_letters + " /", max_size=5), max_size=12
).map("".join)


@pytest.fixture(scope="module")
def screen():
    """The module's console, writing plain text into a buffer."""
    buffer = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            ui, "console", Console(file=buffer, width=200, color_system=None, highlight=False, soft_wrap=True)
        )
        yield buffer


def printed(screen: io.StringIO, show, *args) -> str:
    screen.seek(0)
    screen.truncate()
    show(*args)
    return screen.getvalue()


def events_with(text: str) -> list[Record]:
    """One event of every kind the live view prints, `text` in each field that comes from outside."""

    def at(event: TimelineEvent) -> Record:
        return Record(1.25, 0.0, 1, 1, event)

    return [
        at(Asr(text or "x", text, 140)),
        at(Thesis(1, text, 0)),
        at(Error(text, text)),
        at(ProviderSkipped(text, text, text, False)),
    ]


def test_markup_in_a_thesis_is_printed_literally(screen) -> None:
    assert "thesis 1 [bold]x[/bold]" in printed(screen, ui.print_event, events_with("[bold]x[/bold]")[1])
    assert "thesis 1 [/INST] Ответ" in printed(screen, ui.print_event, events_with("[/INST] Ответ")[1])


def test_markup_in_a_question_is_printed_literally_in_the_summary(screen) -> None:
    chain = QuestionChain(q=1, utt=1, text="[/INST] Что такое [bold]ДНК[/bold]?", theses=["ДНК — носитель."])
    assert "[/INST] Что такое [bold]ДНК[/bold]?" in printed(screen, ui.print_summary, [chain], None, None)


@settings(deadline=None, max_examples=200)
@given(markup_like)
def test_every_field_from_outside_is_printed_as_written(screen, text: str) -> None:
    for event in events_with(text):
        assert text in printed(screen, ui.print_event, event)


@settings(deadline=None, max_examples=200)
@given(st.one_of(any_text, markup_like))
def test_print_event_never_raises(screen, text: str) -> None:
    for event in events_with(text):
        printed(screen, ui.print_event, event)
