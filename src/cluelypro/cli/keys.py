"""Single keypresses while `run` plays in real time: m mute/unmute, r repeat the last thesis,
n the next thesis — the dashboard's shortcuts (the same keys on a Russian layout: ь, к, т).

Only when stdin is the terminal of the foreground job; otherwise (pipes, CI, `&`) nothing is read
and nothing is said about keys. POSIX: the terminal goes into cbreak mode (no Enter, no echo;
Ctrl+C still interrupts, as ISIG stays on) and is restored however the run ends; the event loop
reads stdin. Ctrl+Z gives the terminal back as it was before the run stops, and `fg` puts it in
cbreak mode again (SIGTSTP, SIGCONT). Windows: the console is polled with msvcrt (this path was
only read, never run).
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from rich.text import Text

from cluelypro.cli import console as ui
from cluelypro.pipeline.controls import ControlledEarpiece, NotApplicable, control

if TYPE_CHECKING:
    from cluelypro.pipeline.pipeline import Pipeline
    from cluelypro.prompter.plan import PlannedThesis

log = logging.getLogger(__name__)

KEYS_LINE = "keys: m mute/unmute · r repeat · n next · Ctrl+C stop"
ACTIONS = {"m": "mute", "ь": "mute", "r": "repeat", "к": "repeat", "n": "skip", "т": "skip"}
"""Key (lower case) → control; "mute" toggles."""
WINDOWS_POLL_S = 0.05
WINDOWS_PREFIXES = ("\x00", "\xe0")  # getwch's first half of a function or arrow key


def keys_available(stdin: TextIO | None = None) -> bool:
    """Whether keys can be read: stdin is a terminal, and (POSIX) this process owns it now — a
    background job changing the terminal's mode would be stopped by SIGTTOU."""
    stdin = stdin or sys.stdin
    try:
        fd = stdin.fileno()
        if not os.isatty(fd):
            return False
        return sys.platform == "win32" or os.tcgetpgrp(fd) == os.getpgrp()
    except (AttributeError, ValueError, OSError):  # no stdin, a closed one, or no file behind it
        return False


class TerminalKeys:
    """Keypresses acting on a running pipeline, each acknowledged with one console line."""

    def __init__(
        self,
        pipeline: Pipeline,
        earpiece: ControlledEarpiece,
        now: Callable[[], float],
        say: Callable[[Text], None] = ui.console.print,
    ) -> None:
        self.pipeline = pipeline
        self.earpiece = earpiece
        self.now = now  # input time, for the line's time stamp
        self.say = say

    def press(self, key: str) -> str | None:
        """Do what `key` asks; returns the line that acknowledges it (None: not a key of ours)."""
        action = ACTIONS.get(key.lower())
        if action is None:
            return None
        if action == "mute" and self.earpiece.muted:
            action = "unmute"
        try:
            thesis = control(action, self.pipeline, self.earpiece)
        except NotApplicable as refusal:
            return str(refusal)
        return _acknowledgement(action, thesis)

    def _pressed(self, key: str) -> None:
        line = self.press(key)
        if line is not None:
            self.say(Text.assemble((f"{self.now():7.2f}s", "dim"), " ", (f"key {key}", "magenta"), " ", line))

    async def listen(self, stdin: TextIO | None = None) -> None:
        """Act on keypresses until cancelled (it never ends by itself: a companion of the run)."""
        stdin = stdin or sys.stdin
        ui.console.print(KEYS_LINE)
        if sys.platform == "win32":
            await self._poll_console()
        else:
            await self._read_terminal(stdin.fileno(), stdin.encoding or "utf-8")

    async def _read_terminal(self, fd: int, encoding: str) -> None:
        loop = asyncio.get_running_loop()
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")  # a key may come in pieces

        def readable() -> None:
            try:
                data = os.read(fd, 64)
            except OSError:  # the terminal went away (EIO)
                data = b""
            if not data:  # end of input: no more keys, the run goes on
                loop.remove_reader(fd)
                return
            for key in decoder.decode(data):
                self._pressed(key)

        with cbreak(fd, loop):
            loop.add_reader(fd, readable)
            try:
                await loop.create_future()  # until cancelled with the run
            finally:
                loop.remove_reader(fd)

    async def _poll_console(self) -> None:
        if sys.platform == "win32":  # mypy reads this for the platform it checks
            import msvcrt

            while True:
                while msvcrt.kbhit():
                    key = msvcrt.getwch()
                    if key in WINDOWS_PREFIXES:
                        msvcrt.getwch()  # the key's second half: not a key of ours
                    else:
                        self._pressed(key)
                await asyncio.sleep(WINDOWS_POLL_S)


def _acknowledgement(action: str, thesis: PlannedThesis | None) -> str:
    if action == "mute":
        return "muted — the prompter goes on unheard; m to unmute"
    if action == "unmute":
        return "unmuted"
    assert thesis is not None, "repeat and skip name their thesis"
    return f"repeating thesis {thesis.index}" if action == "repeat" else f"skipped thesis {thesis.index}"


@contextmanager
def cbreak(fd: int, loop: asyncio.AbstractEventLoop | None = None) -> Iterator[None]:
    """The terminal on `fd` in cbreak mode (keys without Enter, no echo, signals on), restored
    on every way out. With `loop` (its signal handlers need the main thread), job control too:
    Ctrl+Z restores the terminal before the process stops, and SIGCONT (`fg`) sets cbreak mode
    again — the shell sets its own mode while it holds the terminal. A process that is not the
    foreground job leaves the terminal alone (changing it would stop the process: SIGTTOU)."""
    mode = _Cbreak(fd)
    with _job_control(mode, loop):  # before cbreak: a Ctrl+Z from then on gives the terminal back
        mode.apply()
        try:
            yield
        finally:
            mode.restore()


class _Cbreak:
    def __init__(self, fd: int) -> None:
        import termios

        self.fd = fd
        self.saved = termios.tcgetattr(fd)

    def apply(self) -> None:
        import termios
        import tty

        if not _in_background(self.fd):
            tty.setcbreak(self.fd, termios.TCSANOW)

    def restore(self) -> None:
        import termios

        if not _in_background(self.fd):
            termios.tcsetattr(self.fd, termios.TCSANOW, self.saved)


def _in_background(fd: int) -> bool:
    """`fd` is this process's controlling terminal, and another process group has it."""
    try:
        return os.tcgetpgrp(fd) != os.getpgrp()
    except OSError:  # not our controlling terminal: no job control applies to it
        return False


@contextmanager
def _job_control(mode: _Cbreak, loop: asyncio.AbstractEventLoop | None) -> Iterator[None]:
    """SIGTSTP and SIGCONT handled in `loop` while in the block (through its wakeup fd, so they
    are seen whichever thread the signal lands on); the handlers before are put back after. A
    SIGTSTP that was ignored stays ignored."""
    import signal

    if loop is None:
        yield
        return
    signals = [signal.SIGCONT]
    if signal.getsignal(signal.SIGTSTP) == signal.SIG_DFL:
        signals.append(signal.SIGTSTP)
    before = {number: signal.getsignal(number) for number in signals}

    def stop() -> None:
        """As the default action of SIGTSTP, with the terminal given back first."""
        mode.restore()
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        try:
            signal.raise_signal(signal.SIGTSTP)  # stopped here until SIGCONT
        finally:
            loop.add_signal_handler(signal.SIGTSTP, stop)
        mode.apply()

    installed: list[signal.Signals] = []
    try:
        for number in signals:
            loop.add_signal_handler(number, stop if number == signal.SIGTSTP else mode.apply)
            installed.append(number)
    except (RuntimeError, ValueError) as error:  # not the main thread: keys without job control
        log.debug("terminal keys without job control: %s", error)
    try:
        yield
    finally:
        for number in installed:
            loop.remove_signal_handler(number)
            previous = before[number]
            if previous is not None:
                signal.signal(number, previous)
