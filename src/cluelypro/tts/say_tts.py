"""macOS's own Russian voice (Milena) through the `say` command.

Each sentence is spoken by `say -v Milena --file-format=WAVE --data-format=LEI16@22050 -o FILE`
into a WAV file in a private temporary folder (0700, removed at once), the text on its standard
input (`-f -`), so no sentence is ever read as an option. `say` ships with every macOS: nothing to
install but the voice itself (System Settings → Accessibility → Spoken Content → System voice →
Manage Voices… → Russian → Milena).

The voice: SAY_VOICE (default Milena; "Milena (Enhanced)" serves too), else the first Russian
voice `say -v '?'` lists.

The `say` calls were written from its manual page and have not been run on macOS yet; the tests
stand a WAV written with soundfile in for its output file.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from cluelypro.packaged import ModelUnavailableError, ProgressCallback
from cluelypro.tts.system_voice import chunks, sentences, sound_file_samples

SAMPLE_RATE = 22_050
DEFAULT_WORDS_PER_MINUTE = 175
TIMEOUT_S = 60.0
INSTALL_RUSSIAN_VOICE = (
    "install the Russian voice: System Settings → Accessibility → Spoken Content → System voice → "
    "Manage Voices… → Russian → Milena"
)
_VOICE_LINE = re.compile(r"^(?P<name>\S.*?)\s+(?P<locale>[a-z]{2,3}[_-][A-Za-z0-9]+)\s+#")

Runner = Callable[[Sequence[str], str], str]
"""Runs `say` with these arguments and this text on its standard input; returns its standard output."""


def run_say(arguments: Sequence[str], text: str) -> str:
    """The real `say` (macOS only)."""
    try:
        done = subprocess.run(
            ["say", *arguments], input=text, capture_output=True, text=True, encoding="utf-8", timeout=TIMEOUT_S
        )
    except FileNotFoundError:
        raise ModelUnavailableError("the `say` command is missing (it ships with macOS)") from None
    if done.returncode != 0:
        reason = " ".join(done.stderr.split())[:200] or f"exit code {done.returncode}"
        raise RuntimeError(f"say failed: {reason}")
    return done.stdout


def voices(listing: str) -> list[tuple[str, str]]:
    """(name, locale) of each voice in `say -v '?'`'s listing."""
    found = []
    for line in listing.splitlines():
        match = _VOICE_LINE.match(line)
        if match:
            found.append((match["name"].strip(), match["locale"]))
    return found


def choose_voice(listed: Sequence[tuple[str, str]], wanted: str) -> str:
    """`wanted` as listed (or its "(Enhanced)"/"(Premium)" form), else the first Russian voice."""
    for name, _ in listed:
        if name.lower() == wanted.lower() or name.lower().startswith(wanted.lower() + " ("):
            return name
    russian = next((name for name, locale in listed if locale.lower().startswith("ru")), None)
    if russian is None:
        raise ModelUnavailableError(f"macOS has no Russian voice ({wanted} is not installed); {INSTALL_RUSSIAN_VOICE}")
    return russian


class SaySynthesizer:
    def __init__(self, voice: str = "Milena", speed: float = 1.0, runner: Runner | None = None) -> None:
        self.wanted = voice
        self.speed = speed
        self.name = f"say:{voice}"
        self.sample_rate = SAMPLE_RATE
        self._run = runner or run_say
        self._voice: str | None = None

    def load(self, progress: ProgressCallback | None = None) -> None:
        if self._voice is not None:
            return
        if self._run is run_say and shutil.which("say") is None:
            raise ModelUnavailableError("the `say` command is missing (it ships with macOS)")
        self._voice = choose_voice(voices(self._run(["-v", "?"], "")), self.wanted)
        self.name = f"say:{self._voice}"
        if progress:
            progress(1, 1)

    def warm_up(self) -> None:
        for _ in self.synthesize("Прогрев синтеза речи."):
            pass

    def arguments(self, output: Path) -> list[str]:
        assert self._voice is not None
        rate = [] if self.speed == 1.0 else ["-r", str(round(DEFAULT_WORDS_PER_MINUTE * self.speed))]
        return [
            "-v",
            self._voice,
            *rate,
            "--file-format=WAVE",
            f"--data-format=LEI16@{SAMPLE_RATE}",
            "-o",
            str(output),
            "-f",
            "-",
        ]

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        self.load()
        for sentence in sentences(text):
            with tempfile.TemporaryDirectory(prefix="cluelypro-say-") as folder:
                output = Path(folder) / "sentence.wav"
                self._run(self.arguments(output), sentence)
                audio = sound_file_samples(output.read_bytes(), SAMPLE_RATE)
            yield from chunks(audio, SAMPLE_RATE)
