"""Cloud speech engines (OpenAI transcription and speech, Google Cloud TTS) against real local
servers that speak the providers' wire protocols, backed by the embedded Whisper and RHVoice
(tests/servers/openai_audio.py, tests/servers/google_tts.py): the official SDKs do the talking,
nothing of ours is mocked. Faults are injected by the servers (tests/servers/base.py).

Audio: ../shared/audio/ru/ohf_02.wav («Какая погода в Москве», 16 kHz mono; see
../shared/audio/README.md). Each server and engine starts once per module.

Timing assertions are loose (2 shared cores): a "slow" server sleeps SLOW_S = 6 s before its first
byte and the engines' timeout is TIMEOUT_S = 1 s, so "gave up" means well under 6 s.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import soxr

from cluelypro.asr.openai_asr import OpenAIRecognizer, wav_bytes
from cluelypro.packaged import ModelUnavailableError
from cluelypro.pipeline.fallback import Output, Skipped, first_answering
from cluelypro.secrets import MASK, register
from cluelypro.tts.google_tts import GoogleCloudSynthesizer, language_of
from cluelypro.tts.openai_tts import OpenAISynthesizer, pcm16_chunks
from conftest import RU_AUDIO

AUDIO_DIR = RU_AUDIO
CLIP = "ohf_02.wav"
SENTENCE = "Завтра утром мы поедем на вокзал."  # RHVoice anna → Whisper base: every word back
API_KEY = "local-test-key-" + uuid.uuid4().hex
TIMEOUT_S = 1.0
SLOW_S = 6.0
BUDGET_S = 2.0  # longer than TIMEOUT_S: the engine's own timeout decides, not the chain's budget
SHORT_BUDGET_S = 0.5  # shorter: the chain gives up first
REPEATS = 3  # hand-over delays are medians of this many runs


# --- helpers -----------------------------------------------------------------------------------


def read_clip(name: str) -> np.ndarray:
    audio, rate = sf.read(AUDIO_DIR / name, dtype="float32")
    assert rate == 16_000 and audio.ndim == 1
    return audio


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower().replace("ё", "е"))


def heard(whisper, audio_24k: np.ndarray) -> str:
    return whisper.transcribe(soxr.resample(audio_24k, 24_000, 16_000).astype(np.float32))


def assert_speech_of(audio: np.ndarray, text: str, whisper) -> None:
    """24 kHz float32 audio of plausible length in which Whisper hears most of `text`'s words."""
    assert audio.dtype == np.float32 and audio.ndim == 1
    seconds_per_char = len(audio) / 24_000 / len(text)
    assert 0.03 < seconds_per_char < 0.15, f"{len(audio) / 24_000:.2f} s for {len(text)} characters"
    assert 0.05 < float(np.max(np.abs(audio))) <= 1.0
    expected, got = words(text), set(words(heard(whisper, audio)))
    assert sum(word in got for word in expected) >= 0.8 * len(expected), (expected, got)


def failing_call(call) -> tuple[BaseException, float, int]:
    """The error `call()` raised, the seconds it took, and how many items it yielded first."""
    started, items = time.monotonic(), 0
    with pytest.raises(Exception) as raised:
        for _ in call():
            items += 1
    return raised.value, time.monotonic() - started, items


def run_chain(stage: str, engines: list, open_stream, budget_s: float) -> list[tuple[float, object]]:
    """Every item `first_answering` yields, with the seconds since the chain started."""

    async def collect() -> list[tuple[float, object]]:
        started, events = time.monotonic(), []
        async for item in first_answering(stage, engines, open_stream, budget_s):
            events.append((time.monotonic() - started, item))
        return events

    return asyncio.run(collect())


def ready(engine):
    """`engine` loaded and warmed up, as the app starts it."""
    engine.load()
    engine.warm_up()
    return engine


class QuietDisconnects(logging.Filter):
    """uvicorn logs a traceback for every injected reset and every client that gave up."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return type(error).__name__ not in ("ConnectionDropped", "ClientDisconnect")


# --- fixtures: embedded engines, servers and the cloud engines (once per module) ----------------


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return read_clip(CLIP)


@pytest.fixture(scope="module")
def whisper():
    """The embedded Whisper of the test side: the reference, and the ASR chain's last engine."""
    from cluelypro.asr.whisper import WhisperRecognizer

    return ready(WhisperRecognizer())


@pytest.fixture(scope="module")
def rhvoice():
    from cluelypro.tts.rhvoice import RhVoiceSynthesizer

    synthesizer = ready(RhVoiceSynthesizer())
    yield synthesizer
    synthesizer.close()


@pytest.fixture(scope="module")
def backends():
    """The servers' own embedded engines (separate instances from the test side's)."""
    from cluelypro.asr.whisper import WhisperRecognizer
    from servers.embedded import EmbeddedEars, EmbeddedVoice

    recognizer = ready(WhisperRecognizer())
    voice = EmbeddedVoice()
    list(voice.stream("Прогрев."))
    quiet = QuietDisconnects()
    logging.getLogger("uvicorn.error").addFilter(quiet)
    yield SimpleNamespace(ears=EmbeddedEars(recognizer), voice=voice)
    logging.getLogger("uvicorn.error").removeFilter(quiet)
    voice.close()


@pytest.fixture(scope="module")
def openai_server_once(backends):
    from servers import openai_audio
    from servers.base import Faults, serve

    faults = Faults()
    app = openai_audio.create_app(API_KEY, backends.ears, backends.voice, faults)
    with serve(app) as url:
        yield SimpleNamespace(url=f"{url}/v1", faults=faults, state=app.app.state)


@pytest.fixture(scope="module")
def google_server_once(backends, tmp_path_factory):
    from servers import google_tts
    from servers.base import Faults, serve

    faults, accounts = Faults(), google_tts.Accounts()
    app = google_tts.create_app(accounts, backends.voice, faults)
    folder = tmp_path_factory.mktemp("google")
    with serve(app) as url:
        token_uri = f"{url}/token"
        yield SimpleNamespace(
            url=url,
            faults=faults,
            accounts=accounts,
            state=app.state.service.state,
            credentials=google_tts.new_service_account(folder / "service-account.json", token_uri, accounts=accounts),
            # same account, a key the server has never seen (deleted, or from another project)
            wrong_credentials=google_tts.new_service_account(folder / "unknown-key.json", token_uri),
        )


@pytest.fixture
def openai_server(openai_server_once):
    openai_server_once.faults.clear()
    return openai_server_once


@pytest.fixture
def google_server(google_server_once):
    google_server_once.faults.clear()
    return google_server_once


@pytest.fixture(scope="module")
def openai_asr(openai_server_once):
    return ready(OpenAIRecognizer(API_KEY, base_url=openai_server_once.url, timeout_s=TIMEOUT_S))


@pytest.fixture(scope="module")
def openai_tts(openai_server_once):
    return ready(OpenAISynthesizer(API_KEY, base_url=openai_server_once.url, timeout_s=TIMEOUT_S))


@pytest.fixture(scope="module")
def google_tts(google_server_once):
    return ready(
        GoogleCloudSynthesizer(google_server_once.credentials, endpoint=google_server_once.url, timeout_s=TIMEOUT_S)
    )


@pytest.fixture(scope="module")
def wrong_key() -> str:
    key = "wrong-key-" + uuid.uuid4().hex
    register(key)  # as the app does with every configured key
    return key


# --- without servers ---------------------------------------------------------------------------


def test_pcm_chunks_carry_an_odd_byte_over():
    samples = np.array([0, 1, -1, 32767, -32768, 1234], dtype="<i2")
    data = samples.tobytes()
    pieces = [data[:3], data[3:4], data[4:9], data[9:]]  # cuts inside samples
    chunks = list(pcm16_chunks(iter(pieces)))
    assert all(chunk.dtype == np.float32 for chunk in chunks)
    np.testing.assert_array_equal(np.concatenate(chunks), samples.astype(np.float32) / 32768.0)


def test_upload_is_a_16_bit_wav_of_the_clip(clip):
    audio, rate = sf.read(io.BytesIO(wav_bytes(clip)), dtype="float32")
    info = sf.info(io.BytesIO(wav_bytes(clip)))
    assert (rate, info.subtype, info.format) == (16_000, "PCM_16", "WAV")
    np.testing.assert_array_equal(audio, clip)  # the shared clips are 16-bit already: lossless


def test_google_language_comes_from_the_voice():
    assert language_of("ru-RU-Wavenet-D") == "ru-RU"
    assert language_of("en-GB-Neural2-A") == "en-GB"
    with pytest.raises(ModelUnavailableError):
        language_of("anna")


def test_no_key_in_repr():
    for engine in (OpenAIRecognizer(API_KEY), OpenAISynthesizer(API_KEY)):
        assert API_KEY not in repr(engine) and API_KEY not in engine.name


@pytest.mark.parametrize("module", ["openai", "google.cloud.texttospeech"])
def test_missing_sdk_says_how_to_install(module, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if it were not installed
    engine = OpenAIRecognizer(API_KEY) if module == "openai" else GoogleCloudSynthesizer(tmp_path / "sa.json")
    with pytest.raises(ModelUnavailableError, match=re.escape("pip install 'cluelypro[cloud]'")):
        engine.load()


def test_unusable_credentials_file_is_one_line_without_the_key(tmp_path, monkeypatch):
    private_key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
    not_json = tmp_path / "not-json.json"
    not_json.write_text("this is not JSON", encoding="utf-8")
    not_a_service_account = tmp_path / "user.json"
    not_a_service_account.write_text('{"type": "authorized_user", "client_id": "x"}', encoding="utf-8")
    bad_key = tmp_path / "bad-key.json"
    bad_key.write_text(
        json.dumps(
            {
                "type": "service_account",
                "client_email": "a@b.iam.gserviceaccount.com",
                "token_uri": "http://127.0.0.1:9/token",
                "private_key": private_key,
                "private_key_id": "abc",
            }
        ),
        encoding="utf-8",
    )
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    cases = {
        tmp_path / "missing.json": "no credentials file",
        not_json: "cannot use",
        not_a_service_account: "cannot use",
        bad_key: "cannot use",
        None: "GOOGLE_APPLICATION_CREDENTIALS",
    }
    for path, expected in cases.items():
        with pytest.raises(ModelUnavailableError) as raised:
            GoogleCloudSynthesizer(path).load()
        message = str(raised.value)
        assert expected in message and "\n" not in message, message
        assert "MIIEvQ" not in message and "PRIVATE KEY" not in message, message


# --- engines against the servers ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gpt-4o-mini-transcribe", "whisper-1"])
def test_transcription_matches_embedded_whisper(model, clip, whisper, openai_server):
    engine = OpenAIRecognizer(API_KEY, model=model, base_url=openai_server.url, timeout_s=TIMEOUT_S)
    text = engine.transcribe(clip)
    assert text and text == whisper.transcribe(clip)
    sent = openai_server.state.transcriptions[-1]
    assert sent == {
        "model": model,
        "language": "ru",
        "response_format": "json",
        "filename": "speech.wav",
        "content_type": "audio/wav",
    }


@pytest.mark.slow
def test_silence_is_not_sent(openai_asr, openai_server):
    before = openai_server.faults.requests
    quiet = np.random.default_rng(0).normal(0, 0.0002, 32_000).astype(np.float32)  # -74 dBFS
    assert openai_asr.transcribe(np.zeros(16_000, dtype=np.float32)) == ""
    assert openai_asr.transcribe(quiet) == ""
    assert openai_asr.transcribe(np.zeros(0, dtype=np.float32)) == ""
    assert openai_server.faults.requests == before


@pytest.mark.slow
def test_openai_speech_streams_24k_audio_whisper_understands(openai_tts, openai_server, whisper):
    chunks = list(openai_tts.synthesize(SENTENCE))
    assert openai_tts.sample_rate == 24_000
    assert len(chunks) >= 3, "the PCM stream should arrive in several chunks"
    assert_speech_of(np.concatenate(chunks), SENTENCE, whisper)
    assert openai_server.state.speech_requests[-1] == {
        "model": "tts-1",
        "input": SENTENCE,
        "voice": "alloy",
        "response_format": "pcm",
        "speed": 1.0,
    }


@pytest.mark.slow
def test_openai_speech_speed_is_sent(openai_server, whisper):
    engine = OpenAISynthesizer(API_KEY, speed=1.5, base_url=openai_server.url, timeout_s=TIMEOUT_S)
    normal = OpenAISynthesizer(API_KEY, base_url=openai_server.url, timeout_s=TIMEOUT_S)
    fast = np.concatenate(list(engine.synthesize(SENTENCE)))
    assert openai_server.state.speech_requests[-1]["speed"] == 1.5
    assert len(fast) < 0.85 * len(np.concatenate(list(normal.synthesize(SENTENCE))))


@pytest.mark.slow
def test_closing_the_speech_generator_closes_the_stream(openai_tts):
    stream = openai_tts.synthesize(SENTENCE * 5)
    next(stream)
    responses = [value for value in stream.gi_frame.f_locals.values() if hasattr(value, "http_response")]
    assert len(responses) == 1 and not responses[0].http_response.is_closed
    stream.close()
    assert responses[0].http_response.is_closed


@pytest.mark.slow
def test_google_synthesis_gives_24k_audio_whisper_understands(google_tts, google_server, whisper):
    before = google_server.accounts.self_signed
    chunks = list(google_tts.synthesize(SENTENCE))
    assert google_tts.sample_rate == 24_000
    assert {len(chunk) for chunk in chunks[:-1]} == {2040}  # 85 ms each, the last one shorter
    assert_speech_of(np.concatenate(chunks), SENTENCE, whisper)
    assert google_server.state.requests[-1] == {
        "input": {"text": SENTENCE},
        "voice": {"languageCode": "ru-RU", "name": "ru-RU-Wavenet-D"},
        "audioConfig": {"audioEncoding": "LINEAR16", "sampleRateHertz": 24000, "speakingRate": 1.0},
    }
    # The SDK signs its own JWT with the account's key: no round trip to the token endpoint.
    assert google_server.accounts.self_signed > before and google_server.accounts.grants == 0


@pytest.mark.slow
def test_google_token_endpoint_grants_access(google_server):
    """The server's other way in, as google-auth uses it for credentials that do not sign their own
    JWT: the JWT-bearer grant at the key file's token_uri, then the access token as Bearer."""
    import requests
    from google.auth.transport.requests import Request
    from google.oauth2 import service_account

    credentials = service_account.Credentials.from_service_account_file(
        str(google_server.credentials), scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    credentials.refresh(Request())
    assert credentials.token.startswith("ya29.") and credentials.expiry is not None
    body = {
        "input": {"text": "Привет."},
        "voice": {"languageCode": "ru-RU"},
        "audioConfig": {"audioEncoding": "LINEAR16"},
    }
    answer = requests.post(
        f"{google_server.url}/v1/text:synthesize",
        json=body,
        timeout=10,
        headers={"Authorization": f"Bearer {credentials.token}"},
    )
    assert answer.status_code == 200 and answer.json()["audioContent"]
    refused = requests.post(
        f"{google_server.url}/v1/text:synthesize",
        json=body,
        timeout=10,
        headers={"Authorization": "Bearer ya29.not-issued"},
    )
    assert refused.status_code == 401 and refused.json()["error"]["status"] == "UNAUTHENTICATED"


# --- faults: each makes the engine raise --------------------------------------------------------

ENGINE_FAULTS = [
    ("openai_asr", "slow"),
    ("openai_asr", "429"),
    ("openai_asr", "503"),
    ("openai_asr", "reset"),
    ("openai_asr", "malformed"),
    ("openai_tts", "slow"),
    ("openai_tts", "429"),
    ("openai_tts", "503"),
    ("openai_tts", "reset"),
    ("google_tts", "slow"),
    ("google_tts", "429"),
    ("google_tts", "503"),
    ("google_tts", "reset"),
    ("google_tts", "malformed"),
]
EXPECTED = {"slow": r"timed out", "429": r"429", "503": r"503", "reset": r".", "malformed": r"."}


def call_of(engine, audio: np.ndarray):
    """What the chain asks of an engine: a transcript (as a one-item stream) or audio chunks."""
    if isinstance(engine, OpenAIRecognizer):
        return lambda: iter([engine.transcribe(audio)])
    return lambda: engine.synthesize(SENTENCE)


@pytest.mark.slow
@pytest.mark.parametrize(("engine_name", "fault"), ENGINE_FAULTS, ids=[f"{e}-{f}" for e, f in ENGINE_FAULTS])
def test_fault_makes_the_engine_raise(engine_name, fault, request, clip, openai_server, google_server):
    engine = request.getfixturevalue(engine_name)
    server = google_server if engine_name == "google_tts" else openai_server
    server.faults.arm(fault, seconds=SLOW_S)
    error, seconds, items = failing_call(call_of(engine, clip))
    assert re.search(EXPECTED[fault], f"{type(error).__name__}: {error}", re.IGNORECASE), repr(error)
    if fault == "slow":  # given up after about the timeout, well before the server would answer
        assert 0.5 * TIMEOUT_S < seconds < SLOW_S / 2, seconds
    if (engine_name, fault) == ("openai_tts", "reset"):
        assert items > 0, "the reset comes mid-stream, after some audio"


@pytest.mark.slow
def test_wrong_key_or_credentials_is_refused(wrong_key, clip, openai_server, google_server):
    import google.api_core.exceptions
    import google.auth.transport
    import openai

    with pytest.raises(openai.AuthenticationError) as raised:
        OpenAIRecognizer(wrong_key, base_url=openai_server.url, timeout_s=TIMEOUT_S).transcribe(clip)
    assert raised.value.status_code == 401 and wrong_key in str(raised.value)  # the server echoes it
    with pytest.raises(openai.AuthenticationError):
        list(OpenAISynthesizer(wrong_key, base_url=openai_server.url, timeout_s=TIMEOUT_S).synthesize(SENTENCE))
    engine = GoogleCloudSynthesizer(google_server.wrong_credentials, endpoint=google_server.url, timeout_s=TIMEOUT_S)
    before = google_server.faults.requests
    with pytest.raises(google.api_core.exceptions.Unauthorized):
        list(engine.synthesize(SENTENCE))
    # google-auth re-signs and resends on a 401 (DEFAULT_MAX_REFRESH_ATTEMPTS times): more round trips
    assert google_server.faults.requests - before == 1 + google.auth.transport.DEFAULT_MAX_REFRESH_ATTEMPTS


@pytest.mark.slow
def test_wrong_key_is_not_in_the_skip_reason(wrong_key, clip, whisper, openai_server):
    engine = OpenAIRecognizer(wrong_key, base_url=openai_server.url, timeout_s=TIMEOUT_S)
    events = run_chain("asr", [engine, whisper], lambda e: iter([e.transcribe(clip)]), BUDGET_S)
    skipped = [item for _, item in events if isinstance(item, Skipped)]
    assert len(skipped) == 1 and skipped[0].engine == engine.name
    assert "401" in skipped[0].reason and MASK in skipped[0].reason
    assert wrong_key not in skipped[0].reason and wrong_key[-12:] not in skipped[0].reason
    assert [item.item for _, item in events if isinstance(item, Output)] == [whisper.transcribe(clip)]


# --- the fallback chain: the next engine answers the same input; hand-over delays ---------------


@dataclass
class ChainCase:
    stage: str
    engines: list  # the faulty engine first
    fault: str  # a server fault, or "401" (the first engine's key/credentials are wrong)
    faults: object | None  # the first engine's server's Faults
    budget_s: float = BUDGET_S


@pytest.mark.slow
def test_chain_hands_over_on_every_fault(
    clip, whisper, rhvoice, openai_asr, openai_tts, google_tts, openai_server, google_server, wrong_key, capsys
):
    def stream(stage: str):
        return (lambda e: iter([e.transcribe(clip)])) if stage == "asr" else (lambda e: e.synthesize(SENTENCE))

    # (stage, chain, the first engine's server, its faults, the first engine with a wrong key/credentials)
    chains = [
        (
            "asr",
            [openai_asr, whisper],
            openai_server.faults,
            ["slow", "429", "503", "reset", "malformed"],
            OpenAIRecognizer(wrong_key, base_url=openai_server.url, timeout_s=TIMEOUT_S),
        ),
        (
            "tts",
            [openai_tts, google_tts, rhvoice],
            openai_server.faults,
            ["slow", "429", "503", "reset"],
            OpenAISynthesizer(wrong_key, base_url=openai_server.url, timeout_s=TIMEOUT_S),
        ),
        (
            "tts",
            [google_tts, rhvoice],
            google_server.faults,
            ["slow", "429", "503", "reset", "malformed"],
            GoogleCloudSynthesizer(google_server.wrong_credentials, endpoint=google_server.url, timeout_s=TIMEOUT_S),
        ),
    ]
    cases = []
    for stage, engines, faults, kinds, wrong_engine in chains:
        cases += [ChainCase(stage, engines, kind, faults) for kind in kinds]
        cases.append(ChainCase(stage, [wrong_engine, *engines[1:]], "401", None))
        cases.append(ChainCase(stage, engines, "slow", faults, SHORT_BUDGET_S))

    def first_output(events, engine_name) -> tuple[float, list]:
        outputs = [(t, item.item) for t, item in events if isinstance(item, Output) and item.engine == engine_name]
        assert outputs, f"{engine_name} gave no output: {events}"
        return outputs[0][0], [item for _, item in outputs]

    def hand_over(case: ChainCase, answering: str, expected: list) -> tuple[float, str]:
        """One run with the fault armed: the answering engine's time to first output, the reason."""
        for faults in (openai_server.faults, google_server.faults):
            faults.clear()
        if case.faults is not None:
            case.faults.arm(case.fault, seconds=SLOW_S)
        events = run_chain(case.stage, case.engines, stream(case.stage), case.budget_s)
        skipped = [item for _, item in events if isinstance(item, Skipped)]
        first_t, output = first_output(events, answering)
        assert [s.engine for s in skipped] == [case.engines[0].name], skipped
        assert skipped[0].reason, skipped
        if case.stage == "asr":
            assert output == expected, (output, expected)
        else:  # the same sentence, in full
            assert sum(map(len, output)) == pytest.approx(sum(map(len, expected)), rel=0.01)
        if case.fault == "slow" and case.budget_s < TIMEOUT_S:
            assert skipped[0].reason == f"no output within {case.budget_s:g} s", skipped[0].reason
        if case.fault == "reset" and case.engines[0] is openai_tts:
            assert skipped[0].after_output, "the stream was cut after some audio"
        return first_t, skipped[0].reason

    own: dict[str, tuple[float, list]] = {}  # answering engine -> (its own time to first output, its output)
    rows, problems = [], []
    for case in cases:
        answering = case.engines[1]
        if answering.name not in own:  # the answering engine when it is first
            runs = [
                first_output(run_chain(case.stage, case.engines[1:], stream(case.stage), case.budget_s), answering.name)
                for _ in range(REPEATS)
            ]
            own[answering.name] = (statistics.median(t for t, _ in runs), runs[0][1])
        label = f"{case.engines[0].name} {case.fault} (budget {case.budget_s:g} s)"
        try:
            times = [hand_over(case, answering.name, own[answering.name][1]) for _ in range(REPEATS)]
        except AssertionError as error:
            problems.append(f"{label}: {error}")
            continue
        first_t = statistics.median(t for t, _ in times)
        rows.append(
            (
                case.stage,
                case.engines[0].name,
                case.fault,
                case.budget_s,
                answering.name,
                first_t,
                own[answering.name][0],
                first_t - own[answering.name][0],
                times[0][1],
            )
        )

    with capsys.disabled():
        print(
            f"\n\nHand-over delays (engine timeout {TIMEOUT_S:g} s; a slow server sleeps {SLOW_S:g} s; "
            f"hand-over = answering engine's first output − its own time when first; medians of {REPEATS} runs)"
        )
        print(
            f"{'stage':5} {'failing engine':29} {'fault':9} {'budget':>6}  {'answering engine':22} "
            f"{'first out':>9} {'own':>6} {'hand-over':>9}  reason"
        )
        for stage, failing, fault, budget, answering, first_t, own_t, delay, reason in rows:
            print(
                f"{stage:5} {failing:29} {fault:9} {budget:5g}s  {answering:22} {first_t:8.3f}s {own_t:5.3f}s "
                f"{delay:8.3f}s  {reason[:60]}"
            )
        print()
    assert not problems, "\n".join(problems)
