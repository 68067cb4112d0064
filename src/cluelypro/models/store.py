"""Pulled models on disk: where they live, downloading them from the Hugging Face hub, verifying
each file's SHA-256, and putting them in place atomically.

Layout, under `models_dir()` (CLUELYPRO_MODELS_DIR, else `<cache>/models`):

    <name>/                     a complete, verified model: its files (flattened) and MANIFEST
    .partial/<name>/            the download in progress (huggingface_hub's local_dir); never
                                read by a loader, and removed when the pull ends either way

A model folder appears only by one rename, after every file has been downloaded and verified, so
a loader never sees a partial or unverified file. A connection cut mid-file is resumed by
huggingface_hub within the same pull (HTTP Range, up to five tries without progress). A pull that
fails (a wrong digest, the hub unreachable or answering an error) removes what it downloaded:
huggingface_hub (1.x/2.x) downloads each attempt into a fresh temporary file, so partial bytes
could not be resumed by a later pull anyway.

Hashes policy (see catalogue.py): a file without a pinned SHA-256 is refused unless the caller
trusts the first download (`trust_first_download`); its digest is then recorded in the manifest
and every later pull of the model must produce the same digest.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from cluelypro.models.catalogue import CatalogueModel
from cluelypro.packaged import ModelUnavailableError, cache_dir, sha256_of

MANIFEST = "cluelypro-model.json"
PARTIAL = ".partial"
ETAG_TIMEOUT_S = 10.0
REACH_TIMEOUT_S = 10.0


class PullError(ModelUnavailableError):
    """A pull failed; the message is one line saying why and what to do. Nothing was put in place."""


def models_dir() -> Path:
    override = os.environ.get("CLUELYPRO_MODELS_DIR")
    return Path(override) if override else cache_dir() / "models"


def model_dir(model: CatalogueModel) -> Path:
    return models_dir() / model.name


def file_name(path: str) -> str:
    """Where a repository file lands in the model's folder: its base name."""
    return PurePosixPath(path).name


@dataclass
class Manifest:
    name: str
    repo: str
    revision: str
    commit: str | None
    files: dict[str, str]  # base name → SHA-256
    trusted_on_first_download: list[str] = field(default_factory=list)  # base names whose digest was not pinned

    @classmethod
    def read(cls, folder: Path) -> Manifest | None:
        try:
            data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None

    def write(self, folder: Path) -> None:
        (folder / MANIFEST).write_text(json.dumps(self.__dict__, indent=2) + "\n", encoding="utf-8")


def pulled(model: CatalogueModel) -> Manifest | None:
    """The manifest of a pulled model whose files are all in place, else None."""
    folder = model_dir(model)
    manifest = Manifest.read(folder)
    if manifest is None or not all((folder / name).is_file() for name in manifest.files):
        return None
    return manifest


def local_path(model: CatalogueModel) -> Path:
    """What the engine's setting points at: the GGUF or Piper .onnx file, else the folder."""
    folder = model_dir(model)
    suffix = {"llm": ".gguf", "tts": ".onnx"}.get(model.stage)
    for repo_file in model.files:
        if suffix and repo_file.path.endswith(suffix):
            return folder / file_name(repo_file.path)
    return folder


def _expected_digests(model: CatalogueModel, trust_first_download: bool) -> dict[str, str | None]:
    """Each file's digest to check: pinned, else recorded by an earlier trusted pull, else None
    (allowed only when the first download is trusted)."""
    recorded = (Manifest.read(model_dir(model)) or Manifest(model.name, "", "", None, {})).files
    expected: dict[str, str | None] = {}
    for repo_file in model.files:
        digest = repo_file.sha256 or recorded.get(file_name(repo_file.path))
        if digest is None and not trust_first_download:
            raise PullError(
                f"{model.name}: no SHA-256 is pinned for {repo_file.path} (this project could not read it from "
                "the hub, and does not invent one); run `cluelypro models pull "
                f"{model.name} --trust-first-download` to record the digest of what arrives and check every "
                "later pull against it"
            )
        expected[repo_file.path] = digest
    return expected


def _describe_download_error(model: CatalogueModel, repo_file: str, endpoint: str, error: Exception) -> str:
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

    where = f"{model.repo}/{repo_file} from {endpoint}"
    if isinstance(error, RepositoryNotFoundError):
        return f"{model.name}: the hub has no repository {model.repo} (or it is gated) at {endpoint}"
    if isinstance(error, EntryNotFoundError) and not type(error).__name__.startswith("Local"):
        return f"{model.name}: the hub has no file {repo_file} in {model.repo}"
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        return f"{model.name}: the hub answered HTTP {error.response.status_code} for {where}"
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if type(error).__name__ in ("LocalEntryNotFoundError", "OfflineModeIsEnabled") or isinstance(
        error, (ConnectionError, TimeoutError)
    ):
        return (
            f"{model.name}: cannot reach the hub at {endpoint} to download {repo_file} ({first_line[:160]}); "
            "check the connection or HF_ENDPOINT, then pull again"
        )
    return f"{model.name}: downloading {where} failed: {type(error).__name__}: {first_line[:200]}"


def _stdout_tqdm() -> type:
    """huggingface_hub's progress bars, on stdout: stderr is kept for the one-line error."""
    from huggingface_hub.utils import tqdm

    class StdoutTqdm(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("file", sys.stdout)
            super().__init__(*args, **kwargs)

    return StdoutTqdm


def _clean(staging: Path) -> None:
    """Remove the download in progress."""
    shutil.rmtree(staging, ignore_errors=True)
    with contextlib.suppress(OSError):
        staging.parent.rmdir()  # .partial, only when empty


def _check_reachable(model: CatalogueModel, endpoint: str) -> None:
    """Fail at once, in one line, when nothing answers at the endpoint's host and port
    (huggingface_hub would retry a refused connection for about 25 s first). Skipped behind a
    proxy, which only the HTTP client knows how to go through."""
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "", port), timeout=REACH_TIMEOUT_S).close()
    except OSError as error:
        raise PullError(
            f"{model.name}: cannot reach the hub at {endpoint} ({error.strerror or error}); "
            "check the connection or HF_ENDPOINT, then pull again"
        ) from None


def pull(
    model: CatalogueModel,
    trust_first_download: bool = False,
    report: Callable[[str], None] = lambda line: None,
) -> Path:
    """Download, verify and put in place every file of `model`; returns its folder.

    Honours HF_ENDPOINT (read now, not at import) and huggingface_hub's other settings (token,
    HF_HUB_OFFLINE). Raises PullError, with nothing put in place, on any failure."""
    if not model.pullable:
        raise PullError(f"{model.name} is embedded (installed by `make setup`): there is nothing to pull")
    assert model.repo is not None
    expected = _expected_digests(model, trust_first_download)
    endpoint = os.environ.get("HF_ENDPOINT", "").rstrip("/") or "https://huggingface.co"

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise PullError(f"{model.name}: HF_HUB_OFFLINE is set; unset it to download from the hub")
    _check_reachable(model, endpoint)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # its warnings would add lines to the one-line error
    root = models_dir()
    staging = root / PARTIAL / model.name
    staging.mkdir(parents=True, exist_ok=True)
    digests: dict[str, str] = {}
    commit: str | None = None
    try:
        for repo_file in model.files:
            try:
                downloaded = Path(
                    hf_hub_download(
                        model.repo,
                        repo_file.path,
                        revision=model.revision,
                        local_dir=staging,
                        endpoint=endpoint,
                        etag_timeout=ETAG_TIMEOUT_S,
                        tqdm_class=_stdout_tqdm(),
                    )
                )
            except Exception as error:  # every way a download fails ends in one line
                _clean(staging)
                raise PullError(_describe_download_error(model, repo_file.path, endpoint, error)) from None
            actual = sha256_of(downloaded)
            wanted = expected[repo_file.path]
            if wanted is not None and actual != wanted:
                _clean(staging)
                pinned = "pinned" if repo_file.sha256 else "recorded on the first download"
                raise PullError(
                    f"{model.name}: SHA-256 of {repo_file.path} is {actual}, expected {wanted} ({pinned}); "
                    "the file was deleted and nothing was installed"
                )
            digests[repo_file.path] = actual
            commit = commit or _commit_of(staging, repo_file.path)
            report(f"verified {repo_file.path} (SHA-256 {actual[:16]}…)")
        folder = _install(model, staging, digests, commit)
    except BaseException:
        _clean(staging)
        raise
    _clean(staging)
    return folder


def _commit_of(staging: Path, repo_file: str) -> str | None:
    """The commit huggingface_hub recorded for a file it downloaded into `staging`."""
    metadata = staging / ".cache" / "huggingface" / "download" / f"{repo_file}.metadata"
    with contextlib.suppress(OSError, IndexError):
        return metadata.read_text(encoding="utf-8").splitlines()[0].strip() or None
    return None


def _install(
    model: CatalogueModel,
    staging: Path,
    digests: dict[str, str],
    commit: str | None,
) -> Path:
    """Move the verified files into a new folder beside the target, then rename it into place."""
    assert model.repo is not None
    root = models_dir()
    target = model_dir(model)
    fresh = Path(tempfile.mkdtemp(dir=root, prefix=f".{model.name}."))
    try:
        for repo_file in digests:
            os.replace(staging / repo_file, fresh / file_name(repo_file))
        Manifest(
            name=model.name,
            repo=model.repo,
            revision=model.revision,
            commit=commit,
            files={file_name(path): digest for path, digest in digests.items()},
            trusted_on_first_download=[file_name(f.path) for f in model.files if f.sha256 is None],
        ).write(fresh)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(dir=root, prefix=f".{model.name}.old."))
            os.replace(target, old / "model")
        os.replace(fresh, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    return target
