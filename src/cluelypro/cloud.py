"""What every cloud engine shares: its SDK imported only when it loads (the embedded engines work
without them), a client made at load(), no network at warm-up (every request is billed), and the
API key in a private attribute that appears in no message or repr made here (SPEC §3).

A cloud engine is `remote`: the fallback chain does not wait for its worker thread once it has
been skipped, since the thread ends by itself at the client's timeout. The SDKs' own retries are
turned off everywhere: the chain hands over to the next engine instead of retrying here.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from cluelypro.packaged import ModelUnavailableError, ProgressCallback
from cluelypro.secrets import redact

CLOUD_INSTALL_HINT = "pip install 'cluelypro[cloud]'"


def missing_sdk(provider: str, error: ImportError) -> ModelUnavailableError:
    return ModelUnavailableError(f"the {provider} SDK is not installed ({error.name}); {CLOUD_INSTALL_HINT}")


def import_sdk(module: str, provider: str) -> ModuleType:
    """The provider's SDK module, or ModelUnavailableError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise missing_sdk(provider, error) from None


class CloudEngine:
    remote = True
    key_required = True
    name: str

    def __init__(self, api_key: str, model: str, base_url: str | None, timeout_s: float) -> None:
        self._api_key = api_key
        self.model = model
        self.base_url = base_url
        self.timeout_s = timeout_s
        self._client: Any = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r}, timeout_s={self.timeout_s})"

    def load(self, progress: ProgressCallback | None = None) -> None:
        """Create the SDK client (no network call)."""
        if self._client is None:
            if not self._api_key and self.key_required:
                raise ModelUnavailableError(f"{self.name}: no API key is configured")
            self._client = self._make_client()

    def warm_up(self) -> None:
        """Nothing to warm without a billed request: the client is ready once loaded."""
        self.load()

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _make_client(self) -> Any:
        raise NotImplementedError


def openai_client(
    api_key: str,
    base_url: str | None,
    timeout_s: float,
    sdk_module: str = "openai",
    client_class: str = "OpenAI",
    provider: str = "OpenAI",
    **options: Any,
) -> Any:
    """A client of the OpenAI SDK's shape (OpenAI's own; Cerebras' is generated from the same
    template) that never retries and gives up after `timeout_s` on each of connect, write, read
    and pool wait: `<sdk>.Timeout(t)` — httpx2's in openai 3.x — applies one value to all four. The
    read timeout bounds the wait for the first byte and every gap between chunks, not the whole
    download."""
    sdk = import_sdk(sdk_module, provider)
    try:
        return getattr(sdk, client_class)(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=sdk.Timeout(timeout_s), **options
        )
    except Exception as error:  # the SDK refuses the settings: one line, no key
        raise ModelUnavailableError(redact(f"cannot create the {provider} client: {error}")) from None


class OpenAIEngine(CloudEngine):
    """The OpenAI audio engines. The client is thread-safe, and so are the engines: a timed-out
    call may still run when the next one is made."""

    def _make_client(self) -> Any:
        return openai_client(self._api_key, self.base_url, self.timeout_s)
