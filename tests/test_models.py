"""`cluelypro models list|pull|use`, and the gigaam and piper engines, through the real code.

A local server speaks the Hugging Face hub's download protocol (tests/servers/hf_hub.py) on
127.0.0.1; HF_ENDPOINT points huggingface_hub at it, so no request leaves this machine. It serves
the embedded models' real files (Whisper base, the Qwen2.5-Coder GGUF: pulled, verified, loaded by
the real loaders and run) and tiny ONNX models built here with the real input/output signatures of
GigaAM v3 CTC (as onnx-asr runs it) and of a Piper voice (as piper-tts runs it): their output is
nonsense, of the right type and shape.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cluelypro.models import store
from cluelypro.models.catalogue import BY_NAME, CATALOGUE, CatalogueModel
from conftest import RU_AUDIO, assert_one_line_exit_2
from servers.base import free_port
from servers.hf_hub import Hub, serve_hub

CLI = [sys.executable, "-m", "cluelypro.cli"]
HF_CHUNK = 10 * 1024 * 1024  # huggingface_hub's DOWNLOAD_CHUNK_SIZE: what it writes at a time
GIGAAM = BY_NAME["gigaam-v3-ctc"]
PIPER = BY_NAME["piper-ru-irina"]
WHISPER = BY_NAME["whisper-base"]
QWEN = BY_NAME["qwen2.5-coder-1.5b"]


@pytest.fixture(autouse=True)
def models_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Pulled models and huggingface_hub's own state in this test's folder; the hub offline
    unless a test points HF_ENDPOINT at its server."""
    folder = tmp_path / "models"
    monkeypatch.setenv("CLUELYPRO_MODELS_DIR", str(folder))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return folder


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=dict(os.environ), cwd=cwd, timeout=600)


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# --- tiny models with the real signatures ---------------------------------------------------------

GIGAAM_VOCAB = ["▁", *"абвгдеёжзийклмнопрстуфхцчшщъыьэюя", "<blk>"]


def build_gigaam_v3_ctc(folder: Path, padding_mb: int = 0) -> dict[str, Path]:
    """config.json, v3_ctc.onnx and v3_vocab.txt as onnx-asr's GigaAM v3 CTC reads them:
    features float32 [B, 64, T] and feature_lengths int64 [B] → log_probs float32
    [B, (T - 1) // 4 + 1, vocab]. `padding_mb` adds an unused weight of that size."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    weights = np.random.default_rng(1).normal(0, 1, (64, len(GIGAAM_VOCAB))).astype(np.float32)
    nodes = [
        helper.make_node("Slice", ["features", "starts", "ends", "axes", "steps"], ["sub"]),
        helper.make_node("Transpose", ["sub"], ["frames"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["frames", "weights"], ["logits"]),
        helper.make_node("LogSoftmax", ["logits"], ["log_probs"], axis=-1),
    ]
    initializers = [
        numpy_helper.from_array(weights, "weights"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "starts"),
        numpy_helper.from_array(np.array([2**62], dtype=np.int64), "ends"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axes"),
        numpy_helper.from_array(np.array([4], dtype=np.int64), "steps"),
    ]
    if padding_mb:
        initializers.append(numpy_helper.from_array(np.ones(padding_mb * 2**18, dtype=np.float32), "padding"))
    graph = helper.make_graph(
        nodes,
        "gigaam_v3_ctc_tiny",
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 64, "time"]),
            helper.make_tensor_value_info("feature_lengths", TensorProto.INT64, ["batch"]),
        ],
        [helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, ["batch", "frames", len(GIGAAM_VOCAB)])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, folder / "v3_ctc.onnx")
    (folder / "v3_vocab.txt").write_text(
        "".join(f"{token} {index}\n" for index, token in enumerate(GIGAAM_VOCAB)), encoding="utf-8"
    )
    config = {"model_type": "gigaam", "version": "v3", "features_size": 64, "subsampling_factor": 4}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return {name: folder / name for name in ("config.json", "v3_ctc.onnx", "v3_vocab.txt")}


def build_gigaam_v3_rnnt(folder: Path) -> dict[str, Path]:
    """GigaAM v3 RNN-T's three models as onnx-asr runs them: the encoder (audio_signal float32
    [B, 64, T], length int64 [B] → encoded float32 [B, 64, T'], encoded_len int32 [B]), the
    prediction network (x int64 [1, 1], h.1 and c.1 float32 [1, 1, 320] → dec [1, 1, 320], h, c)
    and the joint (enc [1, 64, 1], dec [1, 320, 1] → joint [1, 1, vocab]); config and vocabulary
    as for CTC."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    files = build_gigaam_v3_ctc(folder)
    files["v3_ctc.onnx"].unlink()
    rng = np.random.default_rng(2)
    vocab, hidden = len(GIGAAM_VOCAB), 320

    def save(name: str, nodes, inputs, outputs, initializers) -> Path:
        graph = helper.make_graph(nodes, name, inputs, outputs, initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.checker.check_model(model)
        onnx.save(model, folder / f"{name}.onnx")
        return folder / f"{name}.onnx"

    def const(name: str, value: np.ndarray):
        return numpy_helper.from_array(value, name)

    def tensor(name: str, kind: int, shape: list):
        return helper.make_tensor_value_info(name, kind, shape)

    float_, int64 = TensorProto.FLOAT, TensorProto.INT64
    encoder = save(
        "v3_rnnt_encoder",
        [
            helper.make_node("Slice", ["audio_signal", "starts", "ends", "axes", "steps"], ["encoded"]),
            helper.make_node("Sub", ["length", "one"], ["minus_one"]),
            helper.make_node("Div", ["minus_one", "four"], ["quarter"]),
            helper.make_node("Add", ["quarter", "one"], ["frames"]),
            helper.make_node("Cast", ["frames"], ["encoded_len"], to=TensorProto.INT32),
        ],
        [tensor("audio_signal", float_, ["batch", 64, "time"]), tensor("length", int64, ["batch"])],
        [tensor("encoded", float_, ["batch", 64, "frames"]), tensor("encoded_len", TensorProto.INT32, ["batch"])],
        [
            const("starts", np.array([0], dtype=np.int64)),
            const("ends", np.array([2**62], dtype=np.int64)),
            const("axes", np.array([2], dtype=np.int64)),
            const("steps", np.array([4], dtype=np.int64)),
            const("one", np.array(1, dtype=np.int64)),
            const("four", np.array(4, dtype=np.int64)),
        ],
    )
    decoder = save(
        "v3_rnnt_decoder",
        [
            helper.make_node("Gather", ["embedding", "x"], ["dec"]),
            helper.make_node("Identity", ["h.1"], ["h"]),
            helper.make_node("Identity", ["c.1"], ["c"]),
        ],
        [tensor("x", int64, [1, 1]), *(tensor(name, float_, [1, 1, hidden]) for name in ("h.1", "c.1"))],
        [tensor(name, float_, [1, 1, hidden]) for name in ("dec", "h", "c")],
        [const("embedding", rng.normal(0, 1, (vocab, hidden)).astype(np.float32))],
    )
    joint = save(
        "v3_rnnt_joint",
        [
            helper.make_node("Transpose", ["enc"], ["enc_t"], perm=[0, 2, 1]),
            helper.make_node("Transpose", ["dec"], ["dec_t"], perm=[0, 2, 1]),
            helper.make_node("MatMul", ["enc_t", "w_enc"], ["from_enc"]),
            helper.make_node("MatMul", ["dec_t", "w_dec"], ["from_dec"]),
            helper.make_node("Add", ["from_enc", "from_dec"], ["logits"]),
            helper.make_node("LogSoftmax", ["logits"], ["joint"], axis=-1),
        ],
        [tensor("enc", float_, [1, 64, 1]), tensor("dec", float_, [1, hidden, 1])],
        [tensor("joint", float_, [1, 1, vocab])],
        [
            const("w_enc", rng.normal(0, 1, (64, vocab)).astype(np.float32)),
            const("w_dec", rng.normal(0, 1, (hidden, vocab)).astype(np.float32)),
        ],
    )
    del files["v3_ctc.onnx"]
    return files | {p.name: p for p in (encoder, decoder, joint)}


PIPER_SAMPLE_RATE = 22_050
HOP = 256


def build_piper_voice(folder: Path) -> tuple[Path, Path]:
    """A voice as piper-tts runs it: input int64 [1, N], input_lengths int64 [1], scales float32
    [3] → output float32 [1, 1, N * 256], with a config of a real voice's keys."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP

    folder.mkdir(parents=True, exist_ok=True)
    nodes = [
        helper.make_node("Cast", ["input"], ["ids"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["ids", "axis1"], ["ids3"]),  # [1, 1, N]
        helper.make_node("Tile", ["ids3", "repeats"], ["tiled"]),  # [1, 1, N * 256]
        helper.make_node("ReduceSum", ["scales"], ["scale_sum"], keepdims=0),
        helper.make_node("Mul", ["tiled", "scale_sum"], ["phase"]),
        helper.make_node("Sin", ["phase"], ["output"]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([1, 1, HOP], dtype=np.int64), "repeats"),
    ]
    graph = helper.make_graph(
        nodes,
        "piper_tiny",
        [
            helper.make_tensor_value_info("input", TensorProto.INT64, [1, "phonemes"]),
            helper.make_tensor_value_info("input_lengths", TensorProto.INT64, [1]),
            helper.make_tensor_value_info("scales", TensorProto.FLOAT, [3]),
        ],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, "samples"])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx_path = folder / "ru_RU-irina-medium.onnx"
    onnx.save(model, onnx_path)
    config = {
        "dataset": "irina",
        "audio": {"sample_rate": PIPER_SAMPLE_RATE, "quality": "medium"},
        "espeak": {"voice": "ru"},
        "language": {"code": "ru_RU", "family": "ru", "region": "RU", "name_native": "Русский"},
        "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
        "phoneme_type": "espeak",
        "phoneme_map": {},
        "phoneme_id_map": DEFAULT_PHONEME_ID_MAP,
        "num_symbols": 256,
        "num_speakers": 1,
        "speaker_id_map": {},
        "piper_version": "1.0.0",
    }
    config_path = folder / "ru_RU-irina-medium.onnx.json"
    config_path.write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    return onnx_path, config_path


def serve_model(hub: Hub, model: CatalogueModel, sources: dict[str, Path]) -> None:
    """Serve `sources` (by base name) under the catalogue's repository and paths."""
    assert model.repo is not None
    for repo_file in model.files:
        hub.add(model.repo, repo_file.path, sources[store.file_name(repo_file.path)])


def whisper_base_files() -> dict[str, Path]:
    from cluelypro.asr.whisper import embedded_model_dir

    folder = embedded_model_dir()
    return {name: folder / name for name in ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")}


# --- the catalogue ---------------------------------------------------------------------------------


def test_the_catalogue_pins_only_known_digests() -> None:
    from cluelypro.asr.whisper import EMBEDDED_SHA256
    from cluelypro.llm.models import EMBEDDED

    assert len({m.name for m in CATALOGUE}) == len(CATALOGUE)
    for model in CATALOGUE:
        assert model.pullable or model.embedded, model.name
        for repo_file in model.files:
            assert repo_file.sha256 is None or len(repo_file.sha256) == 64, (model.name, repo_file.path)
    # The only pinned digests are the embedded files', the ones their loaders check.
    assert {f.path: f.sha256 for f in WHISPER.files} == EMBEDDED_SHA256
    assert [f.sha256 for f in QWEN.files] == [EMBEDDED[QWEN.name].sha256]
    assert all(not m.pinned for m in CATALOGUE if m.pullable and not m.embedded)
    stages = {m.stage for m in CATALOGUE}
    assert stages == {"asr", "llm", "tts"}
    assert {"gigaam", "piper"} <= {m.engine for m in CATALOGUE}


def test_list_shows_every_model_with_its_figures() -> None:
    result = cli("models", "list")
    assert result.returncode == 0, result.stderr
    for model in CATALOGUE:
        assert model.name in result.stdout
    assert "embedded, in use" in result.stdout  # whisper-base, the GGUF and RHVoice anna by default
    assert "--trust-first-download" in result.stdout
    assert "estimate" in result.stdout and "measured" in result.stdout


def test_pull_refuses_a_file_without_a_known_digest(models_home: Path) -> None:
    result = cli("models", "pull", GIGAAM.name)
    assert_one_line_exit_2(result, "no SHA-256 is pinned", "--trust-first-download")
    assert leftovers(models_home) == []


def test_pull_of_an_unknown_or_embedded_only_model_is_one_line() -> None:
    assert_one_line_exit_2(cli("models", "pull", "no-such-model"), "no model 'no-such-model'")
    assert_one_line_exit_2(cli("models", "pull", "rhvoice-anna"), "embedded")


# --- failures end in one line, with nothing in place -------------------------------------------


def test_an_unreachable_hub_ends_in_one_line(models_home: Path) -> None:
    result = cli("models", "pull", WHISPER.name)  # HF_ENDPOINT: a port nothing listens on
    assert_one_line_exit_2(result, "cannot reach the hub", os.environ["HF_ENDPOINT"])
    assert leftovers(models_home) == []


def test_offline_mode_is_honoured(models_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert_one_line_exit_2(cli("models", "pull", WHISPER.name), "HF_HUB_OFFLINE is set")
    assert leftovers(models_home) == []


def test_a_wrong_hash_ends_in_one_line_and_nothing_is_left(models_home: Path, monkeypatch) -> None:
    hub = Hub()
    serve_model(hub, WHISPER, whisper_base_files())
    hub.files[(WHISPER.repo, "config.json")].corrupt = True  # other bytes than the pinned ones
    with serve_hub(hub) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        result = cli("models", "pull", WHISPER.name)
    assert_one_line_exit_2(result, "SHA-256 of config.json is", WHISPER.files[0].sha256 or "?", "nothing was installed")
    assert leftovers(models_home) == []
    assert all(host_path.startswith(("/Systran/", "/cdn/")) for _, host_path, _ in hub.requests)


def test_a_missing_file_on_the_hub_is_one_line(models_home: Path, monkeypatch) -> None:
    hub = Hub()
    sources = whisper_base_files()
    hub.add(WHISPER.repo or "", "config.json", sources["config.json"])  # the rest is missing
    with serve_hub(hub) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        result = cli("models", "pull", WHISPER.name)
    assert_one_line_exit_2(result, "no file model.bin")
    assert leftovers(models_home) == []


def test_a_cut_connection_resumes_with_range_and_a_failed_pull_leaves_nothing(
    tmp_path: Path, models_home: Path, monkeypatch
) -> None:
    hub = Hub()
    serve_model(hub, GIGAAM, build_gigaam_v3_ctc(tmp_path / "made", padding_mb=12))
    onnx_file = hub.files[(GIGAAM.repo, "v3_ctc.onnx")]
    with serve_hub(hub) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        # Cut after huggingface_hub's first 10 MB write (it writes whole chunks), then refuse the retry.
        onnx_file.cut_after, onnx_file.then_unavailable = HF_CHUNK, 1
        failed = cli("models", "pull", GIGAAM.name, "--trust-first-download")
        assert_one_line_exit_2(failed, "the hub answered HTTP 503", "v3_ctc.onnx")
        assert leftovers(models_home) == []  # no partial file anywhere, nothing where the loader looks
        assert ("GET", f"/cdn/{onnx_file.sha256}", f"bytes={HF_CHUNK}-") in hub.requests

        # Cut again, the retry allowed: the same pull resumes from 10 MB and completes.
        hub.requests.clear()
        onnx_file.cut_after = HF_CHUNK
        done = cli("models", "pull", GIGAAM.name, "--trust-first-download")
    assert done.returncode == 0, done.stderr
    assert ("GET", f"/cdn/{onnx_file.sha256}", f"bytes={HF_CHUNK}-") in hub.requests
    manifest = store.pulled(GIGAAM)
    assert manifest is not None and manifest.files["v3_ctc.onnx"] == onnx_file.sha256
    assert not (models_home / store.PARTIAL).exists()


# --- use --------------------------------------------------------------------------------------------


def test_use_refuses_a_model_not_pulled(tmp_path: Path) -> None:
    assert_one_line_exit_2(cli("models", "use", "whisper-small", cwd=tmp_path), "not pulled", "models pull")
    assert not (tmp_path / "cluelypro.toml").exists()


def test_use_writes_cluelypro_toml_keeping_other_keys(tmp_path: Path) -> None:
    from cluelypro.config import load_settings

    (tmp_path / "cluelypro.toml").write_text(
        '# my settings\nTHESIS_REPEATS = 3\ntts_voice = "anna"\nuse_tts_engine = ["google", "rhvoice"]\n',
        encoding="utf-8",
    )
    result = cli("models", "use", "rhvoice-elena", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "cluelypro.toml").read_text(encoding="utf-8")
    assert "# my settings" in text and "THESIS_REPEATS = 3" in text
    settings = load_settings()
    assert settings.tts_voice == "elena"
    assert settings.use_tts_engine == ["rhvoice", "google"]
    assert settings.thesis_repeats == 3


def test_an_engine_not_pulled_is_left_out_with_the_reason(tmp_path: Path) -> None:
    from cluelypro.config import load_settings
    from cluelypro.engines import build_chain

    settings = load_settings(asr_engine="gigaam,local", use_tts_engine="piper,rhvoice")
    _, left_out = build_chain(settings, "asr")
    assert [(item.engine, item.reason) for item in left_out] == [
        ("gigaam", "gigaam-v3-ctc is not pulled; `cluelypro models pull gigaam-v3-ctc`")
    ]
    _, left_out = build_chain(settings, "tts")
    assert [item.engine for item in left_out] == ["piper"]
    assert "piper-ru-irina is not pulled" in left_out[0].reason


# --- pull → verify → load → run -------------------------------------------------------------------


def test_gigaam_pull_use_load_and_recognise(tmp_path: Path, models_home: Path, monkeypatch) -> None:
    from cluelypro.asr.gigaam import GigaamRecognizer
    from cluelypro.cli.doctor import model_checks
    from cluelypro.cli.models import in_use
    from cluelypro.config import load_settings
    from cluelypro.engines import build_chain

    hub = Hub()
    serve_model(hub, GIGAAM, build_gigaam_v3_ctc(tmp_path / "made"))
    with serve_hub(hub) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        result = cli("models", "pull", GIGAAM.name, "--trust-first-download")
        assert result.returncode == 0, result.stderr
        folder = models_home / GIGAAM.name
        assert str(folder) in result.stdout
        manifest = store.pulled(GIGAAM)
        assert manifest is not None and sorted(manifest.files) == ["config.json", "v3_ctc.onnx", "v3_vocab.txt"]
        assert manifest.trusted_on_first_download == ["config.json", "v3_ctc.onnx", "v3_vocab.txt"]
        in_place = [GIGAAM.name, *(f"{GIGAAM.name}/{name}" for name in [*manifest.files, store.MANIFEST])]
        assert leftovers(models_home) == sorted(in_place)

        # The recorded digest now guards the next pull: other bytes are refused, the model stays.
        hub.files[(GIGAAM.repo, "v3_vocab.txt")].corrupt = True
        assert "already pulled" in cli("models", "pull", GIGAAM.name).stdout
        again = cli("models", "pull", GIGAAM.name, "--force", "--trust-first-download")
        assert_one_line_exit_2(again, "recorded on the first download")
        assert store.pulled(GIGAAM) == manifest
        assert not (models_home / store.PARTIAL).exists()

    assert cli("models", "use", GIGAAM.name, cwd=tmp_path).returncode == 0
    settings = load_settings()
    assert settings.asr_engine[0] == "gigaam" and settings.gigaam_model == str(folder)
    assert in_use(GIGAAM, settings) and not in_use(WHISPER, settings)  # gigaam comes before local now
    checks = model_checks(settings)
    assert [(c.name, c.ok) for c in checks] == [(f"pulled {GIGAAM.name}", True)]
    assert f"{folder}; in use; digest recorded on first download" == checks[0].detail

    recognizers, left_out = build_chain(settings, "asr")
    assert [item.engine for item in left_out] == ["openai"]  # no key here
    assert isinstance(recognizers[0], GigaamRecognizer)
    recognizer = recognizers[0]
    recognizer.load()
    recognizer.warm_up()
    audio, rate = sf.read(RU_AUDIO / "golos_00.wav", dtype="float32")
    assert rate == 16_000
    text = recognizer.transcribe(audio)
    assert isinstance(text, str)
    assert set(text) <= set("".join(GIGAAM_VOCAB[1:-1]) + " ")  # nonsense, in the model's alphabet
    assert recognizer.transcribe(np.zeros(16_000, dtype=np.float32)) == ""


def test_gigaam_rnnt_pull_load_and_recognise(tmp_path: Path, models_home: Path, monkeypatch) -> None:
    from cluelypro.config import load_settings
    from cluelypro.engines import build_chain

    rnnt = BY_NAME["gigaam-v3-rnnt"]
    hub = Hub()
    serve_model(hub, rnnt, build_gigaam_v3_rnnt(tmp_path / "made"))
    with serve_hub(hub) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        assert cli("models", "pull", rnnt.name, "--trust-first-download").returncode == 0
    assert cli("models", "use", rnnt.name, cwd=tmp_path).returncode == 0
    recognizer = build_chain(load_settings(), "asr")[0][0]
    assert recognizer.name == "gigaam-v3-rnnt"
    recognizer.load()
    audio, _ = sf.read(RU_AUDIO / "golos_00.wav", dtype="float32")
    text = recognizer.transcribe(audio)
    assert isinstance(text, str)
    assert set(text) <= set("".join(GIGAAM_VOCAB[1:-1]) + " ")


def test_piper_pull_use_load_and_speak(tmp_path: Path, models_home: Path, monkeypatch) -> None:
    from cluelypro.config import load_settings
    from cluelypro.engines import build_chain
    from cluelypro.tts.piper_tts import PiperSynthesizer

    onnx_path, config_path = build_piper_voice(tmp_path / "made")
    hub = Hub()
    serve_model(hub, PIPER, {onnx_path.name: onnx_path, config_path.name: config_path})
    with serve_hub(hub) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        result = cli("models", "pull", PIPER.name, "--trust-first-download")
    assert result.returncode == 0, result.stderr
    resolved = "/rhasspy/piper-voices/resolve/main/ru/ru_RU/irina/medium/"
    assert any(path.startswith(resolved) for _, path, _ in hub.requests)

    assert cli("models", "use", PIPER.name, cwd=tmp_path).returncode == 0
    settings = load_settings()
    assert settings.use_tts_engine[0] == "piper"
    assert settings.piper_voice == str(models_home / PIPER.name / onnx_path.name)

    synthesizers, _ = build_chain(settings, "tts")
    voice = synthesizers[0]
    assert isinstance(voice, PiperSynthesizer)
    voice.load()
    voice.warm_up()
    assert voice.sample_rate == PIPER_SAMPLE_RATE
    chunks = list(voice.synthesize("Привет. Как дела?"))
    assert len(chunks) == 2  # one chunk a sentence
    for chunk in chunks:
        assert chunk.dtype == np.float32 and chunk.ndim == 1
        assert chunk.size > 0 and chunk.size % HOP == 0
        assert np.all(np.abs(chunk) <= 1.0)


@pytest.mark.slow
def test_whisper_base_pull_resumes_verifies_loads_and_transcribes(models_home: Path, monkeypatch) -> None:
    from cluelypro.asr.whisper import WhisperRecognizer

    hub = Hub()
    serve_model(hub, WHISPER, whisper_base_files())
    model_bin = hub.files[(WHISPER.repo, "model.bin")]
    model_bin.cut_after = 20 * 1024 * 1024  # the connection drops; huggingface_hub resumes with Range
    with serve_hub(hub) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        folder = store.pull(WHISPER)
    assert folder == models_home / WHISPER.name
    assert ("GET", f"/cdn/{model_bin.sha256}", f"bytes={20 * 1024 * 1024}-") in hub.requests
    assert ("HEAD", "/Systran/faster-whisper-base/resolve/main/model.bin", None) in hub.requests
    manifest = store.pulled(WHISPER)
    assert manifest is not None and manifest.commit == hub.commit(WHISPER.repo or "")
    assert manifest.trusted_on_first_download == []

    recognizer = WhisperRecognizer(str(folder), "ru", 1)
    recognizer.load()
    audio, _ = sf.read(RU_AUDIO / "golos_00.wav", dtype="float32")
    text = recognizer.transcribe(audio)
    assert len(text) > 5 and any("а" <= ch <= "я" for ch in text.lower()), text


@pytest.mark.slow
def test_gguf_pull_verifies_loads_and_generates(tmp_path: Path, models_home: Path, monkeypatch) -> None:
    from cluelypro.config import load_settings
    from cluelypro.llm.llama import LlamaThesisLLM
    from cluelypro.llm.models import resolve_gguf
    from cluelypro.llm.prompts import thesis_messages

    gguf = resolve_gguf(QWEN.name)
    hub = Hub()
    serve_model(hub, QWEN, {QWEN.files[0].path: gguf})
    with serve_hub(hub) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        result = cli("models", "pull", QWEN.name)
    assert result.returncode == 0, result.stderr
    pulled = models_home / QWEN.name / QWEN.files[0].path
    assert pulled.is_file() and store.pulled(QWEN) is not None

    llm = LlamaThesisLLM(str(pulled), threads=2, prompt_threads=2, context_tokens=1024)
    llm.load()
    try:
        first = next(iter(llm.stream(thesis_messages("Что такое фотосинтез?"), 4)))
        assert isinstance(first, str) and first
    finally:
        getattr(llm, "close", lambda: None)()
    # The embedded model needs no pull: `use` writes its name.
    assert cli("models", "use", QWEN.name, cwd=tmp_path).returncode == 0
    assert load_settings().llm_model == QWEN.name
