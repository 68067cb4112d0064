"""Every desktop (issue 13, SPEC §3 9A): the embedded TTS per platform, the system-voice engines'
audio conversion, and doctor's platform checks.

Only Linux runs here. The Windows and macOS branches are tested by setting `sys.platform` and by
fakes of the operating system's calls: no test here runs SAPI or `say` itself (each test that
uses such a fake says so). The shipped Linux engine, RHVoice, is never replaced by a fake.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cluelypro.cli import doctor
from cluelypro.config import load_settings
from cluelypro.engine_names import default_tts_chain, embedded_engine
from cluelypro.engines import LeftOut, build_chain, chain_members
from cluelypro.packaged import ModelUnavailableError
from cluelypro.tts import sapi_tts, say_tts
from cluelypro.tts.system_voice import CHUNK_SECONDS, sentences

QUESTION = "Фотосинтез идёт в хлоропластах. Свет даёт энергию! Что дальше?"


def tone(seconds: float, rate: int) -> np.ndarray:
    samples = np.arange(round(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * samples)).astype(np.float32)


# --- the default chain per platform --------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "embedded", "chain"),
    [
        ("linux", "rhvoice", ["openai", "google", "rhvoice"]),
        ("win32", "sapi", ["openai", "google", "sapi", "piper"]),
        ("darwin", "say", ["openai", "google", "say", "piper"]),
    ],
)
def test_each_platform_has_its_embedded_voice_and_default_chain(
    platform: str, embedded: str, chain: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert embedded_engine("tts", platform) == embedded
    assert embedded_engine("llm", platform) == embedded_engine("asr", platform) == "local"
    assert default_tts_chain(platform) == chain
    monkeypatch.setattr(sys, "platform", platform)
    assert load_settings().use_tts_engine == chain  # the setting's default follows the platform
    assert load_settings(use_tts_engine="google").use_tts_engine == ["google"]  # a chain set stays as set


def test_on_linux_the_system_voices_are_skipped_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    members = dict(chain_members(load_settings(use_tts_engine="sapi,say,rhvoice"), "tts"))
    assert isinstance(members["sapi"], LeftOut) and members["sapi"].reason.startswith("only on Windows")
    assert isinstance(members["say"], LeftOut) and members["say"].reason.startswith("only on macOS")
    assert "the embedded voice here is rhvoice" in members["sapi"].reason
    from cluelypro.tts.rhvoice import RhVoiceSynthesizer

    assert isinstance(members["rhvoice"], RhVoiceSynthesizer)  # the shipped engine itself, never a fake


@pytest.mark.parametrize(("platform", "engine", "name"), [("win32", "sapi", "sapi"), ("darwin", "say", "say:Milena")])
def test_elsewhere_rhvoice_is_skipped_and_the_system_voice_ends_the_chain(
    platform: str, engine: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the chain is built (no engine is loaded): SAPI and `say` are not run here."""
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.delenv("RHVOICELIBPATH", raising=False)
    synthesizers, left_out = build_chain(load_settings(use_tts_engine="rhvoice"), "tts")
    assert [s.name for s in synthesizers] == [name]
    assert [(item.engine, item.reason) for item in left_out] == [
        ("rhvoice", f"RHVoice's libraries are set up on Linux only (or set RHVOICELIBPATH); "
                    f"the embedded voice here is {engine}")
    ]  # fmt: skip


# --- text cut into sentences, so the first audio comes after the first one -----------------------


def test_sentences_end_at_their_marks() -> None:
    assert sentences(QUESTION) == ["Фотосинтез идёт в хлоропластах.", "Свет даёт энергию!", "Что дальше?"]
    assert sentences("  одна фраза без точки ") == ["одна фраза без точки"]
    assert sentences(" \n ") == []


# --- sapi: the conversion of SAPI's memory stream ------------------------------------------------


class FakeSapi:
    """Stands in for SAPI (SpVoice speaking into an SpMemoryStream), which is not run here: a
    byte buffer of 16-bit little-endian PCM per sentence, as the stream's GetData gives it."""

    def __init__(self, voices: Sequence[sapi_tts.SapiVoice], wav: bool = False) -> None:
        self._voices = list(voices)
        self.wav = wav
        self.spoken: list[tuple[str, str, int]] = []
        self.audio: list[np.ndarray] = []

    def voices(self) -> list[sapi_tts.SapiVoice]:
        return self._voices

    def speak(self, text: str, voice: str, rate: int) -> bytes:
        self.spoken.append((text, voice, rate))
        audio = tone(0.05 * len(text), sapi_tts.SAMPLE_RATE)
        self.audio.append(audio)
        pcm = (audio * 32768).astype("<i2")
        if not self.wav:
            return pcm.tobytes()
        target = Path(f"sentence{len(self.spoken)}.wav")
        sf.write(target, pcm, sapi_tts.SAMPLE_RATE, subtype="PCM_16")
        return target.read_bytes()


VOICES = [
    sapi_tts.SapiVoice("Microsoft David Desktop - English (United States)", "409"),
    sapi_tts.SapiVoice("Microsoft Irina Desktop - Russian", "419"),
    sapi_tts.SapiVoice("Microsoft Pavel - Russian (Russia)", "419"),
]


@pytest.mark.parametrize("wav", [False, True], ids=["raw-pcm", "wav"])
def test_sapi_turns_the_stream_into_float_chunks_sentence_by_sentence(wav: bool) -> None:
    """The OS call is a fake (FakeSapi): SAPI itself is not run here."""
    fake = FakeSapi(VOICES, wav=wav)
    synthesizer = sapi_tts.SapiSynthesizer(speed=1.5, backend=fake)
    synthesizer.load()
    assert (synthesizer.name, synthesizer.sample_rate) == ("sapi:Irina", 22_050)
    chunks = list(synthesizer.synthesize(QUESTION))
    assert [text for text, _, _ in fake.spoken] == sentences(QUESTION)
    assert {(voice, rate) for _, voice, rate in fake.spoken} == {("Microsoft Irina Desktop - Russian", 4)}
    assert all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    assert max(len(c) for c in chunks) == round(CHUNK_SECONDS * 22_050)
    np.testing.assert_allclose(np.concatenate(chunks), np.concatenate(fake.audio), atol=1 / 32768)


def test_sapi_picks_the_named_voice_or_says_how_to_install_a_russian_one() -> None:
    """The OS call is a fake (FakeSapi): SAPI itself is not run here."""
    named = sapi_tts.SapiSynthesizer("pavel", backend=FakeSapi(VOICES))
    named.load()
    assert named.name == "sapi:Pavel"
    with pytest.raises(ModelUnavailableError, match=r"Settings → Time & language → Speech"):
        sapi_tts.SapiSynthesizer(backend=FakeSapi(VOICES[:1])).load()
    with pytest.raises(ModelUnavailableError, match="no voice named like 'Milena'.*David"):
        sapi_tts.SapiSynthesizer("Milena", backend=FakeSapi(VOICES)).load()


def test_sapi_rate_follows_tts_speed() -> None:
    assert [sapi_tts.sapi_rate(speed) for speed in (1.0, 3.0, 1 / 3, 10.0, 0.25)] == [0, 10, -10, 10, -10]
    assert sapi_tts.SapiVoice("x", "409;419").russian and not sapi_tts.SapiVoice("x", "409").russian


# --- say: the conversion of its output file ------------------------------------------------------

SAY_VOICES = """\
Alice               it_IT    # Ciao! Mi chiamo Alice.
Milena (Enhanced)   ru_RU    # Здравствуйте! Меня зовут Милена.
Yuri                ru_RU    # Здравствуйте! Меня зовут Юрий.
"""


class FakeSay:
    """Stands in for macOS's `say`, which is not run here: it lists voices as `say -v '?'` does,
    and writes a WAV file (made with soundfile, at another rate than asked, in stereo) where
    `-o` points."""

    def __init__(self, listing: str = SAY_VOICES) -> None:
        self.listing = listing
        self.calls: list[tuple[list[str], str]] = []
        self.audio: list[np.ndarray] = []

    def __call__(self, arguments: Sequence[str], text: str) -> str:
        arguments = list(arguments)
        self.calls.append((arguments, text))
        if arguments == ["-v", "?"]:
            return self.listing
        audio = tone(0.05 * len(text), 44_100)
        self.audio.append(audio)
        sf.write(arguments[arguments.index("-o") + 1], np.stack([audio, audio], axis=1), 44_100, subtype="PCM_16")
        return ""


def test_say_turns_its_file_into_float_chunks_sentence_by_sentence() -> None:
    """The OS call is a fake (FakeSay writes the WAV): `say` itself is not run here."""
    fake = FakeSay()
    synthesizer = say_tts.SaySynthesizer("Milena", speed=1.2, runner=fake)
    synthesizer.load()
    assert (synthesizer.name, synthesizer.sample_rate) == ("say:Milena (Enhanced)", 22_050)
    chunks = list(synthesizer.synthesize(QUESTION))
    spoken = fake.calls[1:]
    assert [text for _, text in spoken] == sentences(QUESTION)
    arguments = spoken[0][0]
    output = Path(arguments[arguments.index("-o") + 1])
    assert arguments == [
        "-v", "Milena (Enhanced)", "-r", "210", "--file-format=WAVE", "--data-format=LEI16@22050",
        "-o", str(output), "-f", "-",
    ]  # fmt: skip
    assert not output.parent.exists()  # the temporary folder is gone
    audio = np.concatenate(chunks)
    assert audio.dtype == np.float32 and audio.ndim == 1
    expected = sum(round(len(a) * 22_050 / 44_100) for a in fake.audio)
    assert abs(len(audio) - expected) <= len(fake.audio)  # resampled to the rate it reports
    assert 0.15 < float(np.abs(audio).max()) < 0.35


def test_say_takes_another_russian_voice_or_says_how_to_install_milena() -> None:
    """The OS call is a fake (FakeSay): `say` itself is not run here."""
    other = say_tts.SaySynthesizer("Milena", runner=FakeSay(SAY_VOICES.replace("Milena (Enhanced)", "Katya")))
    other.load()
    assert other.name == "say:Katya"
    alone = FakeSay("Alice               it_IT    # Ciao! Mi chiamo Alice.\n")
    with pytest.raises(
        ModelUnavailableError, match="Spoken Content → System voice → Manage Voices… → Russian → Milena"
    ):
        say_tts.SaySynthesizer(runner=alone).load()
    assert say_tts.voices(SAY_VOICES) == [("Alice", "it_IT"), ("Milena (Enhanced)", "ru_RU"), ("Yuri", "ru_RU")]


# --- doctor's platform checks --------------------------------------------------------------------


class Portless:
    """sounddevice's import as it fails without the PortAudio library."""

    def __call__(self) -> None:
        raise OSError("PortAudio library not found")


def probe(**overrides) -> doctor.SystemProbe:
    """Fakes of the OS calls doctor makes (which, find_spec, subprocess, file checks)."""
    values = {
        "which": lambda name: None,
        "has_module": lambda name: False,
        "run": lambda command: (1, "no"),
        "path_exists": lambda path: False,
        "import_sounddevice": Portless(),
        "mac_version": lambda: "",
    }
    return doctor.SystemProbe(**{**values, **overrides})


def checks_by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    assert all(check.area == "system" for check in checks)
    return {check.name: check for check in checks}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the real checks of a Linux machine set up here")
def test_doctor_on_linux_here_names_what_is_present() -> None:
    """The real checks on this machine (Linux, set up by scripts/setup.sh): nothing is faked."""
    checks = checks_by_name(doctor.platform_checks(load_settings()))
    assert checks["PortAudio"].ok and checks["RHVoice libraries"].ok
    assert "llama-cpp-python" not in checks  # installed
    assert checks["call mode"].ok in (True, None)  # depends on a Pulse server answering here
    if not checks["call mode"].ok:
        assert "pulseaudio-utils" in checks["call mode"].detail


def test_doctor_on_linux_gives_the_fix_for_each_missing_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("RHVOICELIBPATH", raising=False)
    monkeypatch.setattr(doctor.ctypes.util, "find_library", lambda name: None)
    checks = checks_by_name(doctor.platform_checks(load_settings(), probe()))
    assert checks["PortAudio"].ok is False and "apt-get install libportaudio2" in checks["PortAudio"].detail
    assert checks["RHVoice libraries"].ok is False and "librhvoice5" in checks["RHVoice libraries"].detail
    assert "needs a C/C++ compiler: sudo apt-get install build-essential" in checks["llama-cpp-python"].detail
    assert checks["call mode"].ok is None and "pactl is missing" in checks["call mode"].detail

    info = "Server Name: PulseAudio (on PipeWire 1.0.5)\nDefault Sink: earpiece\n"
    running = probe(which=lambda name: f"/usr/bin/{name}", run=lambda command: (0, info), has_module=lambda _: True)
    checks = checks_by_name(doctor.platform_checks(load_settings(), running))
    assert checks["call mode"] == doctor.Check(
        "system", "call mode", True, "PulseAudio (on PipeWire 1.0.5) answers; the system source is earpiece.monitor"
    )
    assert "llama-cpp-python" not in checks


def test_doctor_on_windows_names_the_speech_pack_and_the_build_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    """sys.platform is set to win32 and SAPI is a fake (FakeSapi): nothing Windows runs here."""
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(sapi_tts, "ComSapi", lambda: FakeSapi(VOICES[:1]))
    checks = checks_by_name(doctor.platform_checks(load_settings(), probe()))
    assert checks["Russian system voice"].ok is False
    assert "Settings → Time & language → Speech" in checks["Russian system voice"].detail
    assert "Visual Studio Build Tools" in checks["llama-cpp-python"].detail
    assert "Desktop development with C++" in checks["llama-cpp-python"].detail
    assert "PortAudio ships in sounddevice's wheel" in checks["PortAudio"].detail
    assert checks["call mode"].ok and "WASAPI loopback" in checks["call mode"].detail
    assert "RHVoice libraries" not in checks

    monkeypatch.setattr(sapi_tts, "ComSapi", lambda: FakeSapi(VOICES))
    tools = probe(path_exists=lambda path: path.name == "vswhere.exe", run=lambda command: (0, "VS Build Tools 2022"))
    checks = checks_by_name(doctor.platform_checks(load_settings(), tools))
    assert checks["Russian system voice"] == doctor.Check("system", "Russian system voice", True, "sapi:Irina")
    assert "a compiler is here (VS Build Tools 2022)" in checks["llama-cpp-python"].detail


def test_doctor_on_macos_names_milena_xcode_and_the_process_tap(monkeypatch: pytest.MonkeyPatch) -> None:
    """sys.platform is set to darwin and `say` is a fake (FakeSay): nothing macOS runs here."""
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(say_tts, "run_say", FakeSay("Alice               it_IT    # Ciao!\n"))
    monkeypatch.setattr(say_tts.shutil, "which", lambda name: "/usr/bin/say")
    checks = checks_by_name(doctor.platform_checks(load_settings(), probe(mac_version=lambda: "15.1")))
    assert "Spoken Content → System voice → Manage Voices… → Russian → Milena" in checks["Russian system voice"].detail
    assert "xcode-select --install" in checks["llama-cpp-python"].detail
    tap = checks["call mode"]  # 14.2 or newer, catap missing (has_module says no)
    assert tap.ok is None and tap.detail.startswith("macOS 15.1: call mode records a Core Audio process tap")
    assert "through catap, which is not installed: pip install catap (Python 3.11+)" in tap.detail
    assert "blackhole" not in tap.detail.lower()
    permission = (
        "System Settings → Privacy & Security → Screen & System Audio Recording → "
        '"System Audio Recording Only": allow the terminal app that runs cluelypro (macOS asks the first time)'
    )
    assert permission in tap.detail

    class Devices:
        @staticmethod
        def query_devices() -> list[dict]:
            return [{"name": "MacBook Speakers"}, {"name": "BlackHole 2ch"}]

    installed = probe(mac_version=lambda: "14.2", has_module=lambda name: name == "catap")
    tap = checks_by_name(doctor.platform_checks(load_settings(), installed))["call mode"]
    assert tap.ok is True and tap.detail.startswith(
        "macOS 14.2: call mode records a Core Audio process tap of every app's sound but the prompter's; "
        "the tap needs the System Audio Recording permission: "
    )
    assert permission in tap.detail and "pip install" not in tap.detail
    both = probe(mac_version=lambda: "26.0", has_module=lambda name: True, import_sounddevice=lambda: Devices)
    tap = checks_by_name(doctor.platform_checks(load_settings(), both))["call mode"]
    assert tap.ok is True and tap.detail.endswith("; BlackHole 2ch is here too (--system-audio BlackHole)")

    older = probe(mac_version=lambda: "13.6", import_sounddevice=lambda: Devices, has_module=lambda name: True)
    checks = checks_by_name(doctor.platform_checks(load_settings(), older))
    assert checks["call mode"] == doctor.Check("system", "call mode", True, "macOS 13.6: loopback device BlackHole 2ch")
    for version in ("14.1.2", "13.6", ""):
        none = probe(mac_version=lambda version=version: version, has_module=lambda name: True)
        blackhole = checks_by_name(doctor.platform_checks(load_settings(), none))["call mode"]
        assert blackhole.ok is None and "brew install blackhole-2ch" in blackhole.detail, version
        assert blackhole.detail.startswith(f"macOS {version or '?'}: call mode (`run --call`) before macOS 14.2")
        assert "not built yet" not in blackhole.detail


# --- the demo's examiner -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "wanted"), [("linux", "aleksandr"), ("win32", "Pavel"), ("darwin", "Yuri")], ids=str
)
def test_the_demo_examiner_speaks_with_the_platforms_male_voice(
    platform: str, wanted: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the engine is chosen (not loaded): SAPI and `say` are not run here."""
    from cluelypro.engines import examiner_synthesizer
    from cluelypro.tts.rhvoice import RhVoiceSynthesizer

    monkeypatch.setattr(sys, "platform", platform)
    examiner = examiner_synthesizer("aleksandr")
    kind = {"linux": RhVoiceSynthesizer, "win32": sapi_tts.SapiSynthesizer, "darwin": say_tts.SaySynthesizer}
    assert type(examiner) is kind[platform]
    assert getattr(examiner, "voice", getattr(examiner, "wanted", None)) == wanted


def test_the_sapi_examiner_takes_any_russian_voice_when_pavel_is_missing() -> None:
    """The OS call is a fake (FakeSapi): SAPI itself is not run here."""
    examiner = sapi_tts.SapiSynthesizer("Pavel", backend=FakeSapi(VOICES[:2]), or_any_russian=True)
    examiner.load()
    assert examiner.name == "sapi:Irina"
