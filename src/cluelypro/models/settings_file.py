"""`cluelypro models use`: the settings that make `run` use a model, written to cluelypro.toml.

The file is the one `load_settings` reads (cluelypro.toml in the working folder, or
CLUELYPRO_CONFIG); its other keys, comments and layout are kept (tomlkit). A key the file already
has in another case (ASR_MODEL for asr_model) is replaced, not duplicated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomlkit

from cluelypro.config import Settings, _toml_path
from cluelypro.engine_names import Stage
from cluelypro.models import store
from cluelypro.models.catalogue import CatalogueModel

CHAIN_KEYS: dict[Stage, str] = {"asr": "asr_engine", "llm": "use_llm_engine", "tts": "use_tts_engine"}


def settings_for(model: CatalogueModel, current: Settings) -> dict[str, Any]:
    """The keys to write: the model's setting, and its engine moved to the front of the chain
    (the rest of the chain stays, as the fallback)."""
    if model.embedded:
        value = model.setting
    else:
        value = str(store.local_path(model))
    model_key = {
        ("asr", "local"): "asr_model",
        ("asr", "gigaam"): "gigaam_model",
        ("llm", "local"): "llm_model",
        ("tts", "rhvoice"): "tts_voice",
        ("tts", "piper"): "piper_voice",
    }[(model.stage, model.engine)]
    chain_key = CHAIN_KEYS[model.stage]
    chain = [model.engine, *(name for name in getattr(current, chain_key) if name != model.engine)]
    return {model_key: value, chain_key: chain}


def write_settings(updates: dict[str, Any], path: Path | None = None) -> Path:
    path = path or _toml_path()
    document = tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()
    for key, value in updates.items():
        for existing in [k for k in document if k.lower() == key and k != key]:
            del document[existing]
        document[key] = value
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(tomlkit.dumps(document), encoding="utf-8")
    temporary.replace(path)
    return path
