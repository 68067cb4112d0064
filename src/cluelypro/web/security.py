"""Who may talk to `cluelypro serve` (a microphone on a network port).

- Bound to a loopback address, the server answers only requests whose `Host` is a loopback name
  (403 otherwise): a web page elsewhere cannot reach it through DNS rebinding.
- Bound to any other address, every HTTP request and WebSocket needs the token printed at start
  (`?token=` once, which sets an HttpOnly SameSite=Strict cookie, or `Authorization: Bearer`);
  without it HTTP gets 401 and a WebSocket is closed with 4401. It is served over HTTPS with a
  self-signed certificate made on first use (browsers give the microphone only to secure origins).
- A WebSocket upgrade whose `Origin` is not the origin served is closed with 4403 (a browser
  always sends one; tools that send none are not browsers, and cannot be made to by a web page).
- No CORS headers are ever sent; responses carry no-referrer (the token may be in the URL),
  nosniff and no framing.
"""

from __future__ import annotations

import datetime
import hmac
import ipaddress
import json
import secrets
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from cluelypro.config import is_loopback as loopback_address
from cluelypro.private_files import open_private
from cluelypro.speaker.profiles import data_dir

COOKIE = "cluelypro_token"
TOKEN_BYTES = 24
CERT_DAYS = 825

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """A loopback name or address, bracketed or not ("[::1]")."""
    return loopback_address(host.strip("[]"))


def host_name(host_header: str) -> str:
    """The name in a `Host` header, without its port ("[::1]:8765" → "::1")."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


@dataclass(frozen=True)
class Policy:
    """What a request must show. `loopback`: the Host check; `token`: required off loopback."""

    loopback: bool
    token: str | None = None
    tls: bool = False
    certificate: tuple[Path, Path] | None = field(default=None, compare=False)  # (cert, key)

    @classmethod
    def for_host(cls, host: str) -> Policy:
        if is_loopback(host):
            return cls(loopback=True)
        return cls(
            loopback=False,
            token=secrets.token_urlsafe(TOKEN_BYTES),
            tls=True,
            certificate=ensure_certificate(host),
        )

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def url(self, host: str, port: int) -> str:
        """The address to open (with the token off loopback)."""
        shown = public_address() if host in ("0.0.0.0", "::") else host
        shown = f"[{shown}]" if ":" in shown else shown
        query = f"?token={self.token}" if self.token else ""
        return f"{self.scheme}://{shown}:{port}/{query}"


class Guard:
    """ASGI middleware that enforces the policy on every HTTP request and WebSocket."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        host = headers.get("host", "")
        if self.policy.loopback and not is_loopback(host_name(host)):
            await _refuse(kind, receive, send, 403, 4403, "the Host header must be a loopback name")
            return
        by_query = False
        if self.policy.token is not None:
            shown, by_query = _token_shown(scope, headers)
            if shown is None or not hmac.compare_digest(shown.encode(), self.policy.token.encode()):
                await _refuse(kind, receive, send, 401, 4401, "a valid token is required")
                return
        if kind == "websocket":
            origin = headers.get("origin")
            if origin is not None and origin.lower() != f"{self.policy.scheme}://{host}".lower():
                await _refuse(kind, receive, send, 403, 4403, "cross-origin WebSocket refused")
                return
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, self._headed(send, set_cookie=by_query))

    def _headed(self, send: Send, set_cookie: bool) -> Send:
        extra = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cache-control", b"no-store"),
        ]
        if set_cookie and self.policy.token is not None:
            secure = "; Secure" if self.policy.tls else ""
            cookie = f"{COOKIE}={self.policy.token}; HttpOnly; SameSite=Strict; Path=/{secure}"
            extra.append((b"set-cookie", cookie.encode("latin-1")))

        async def headed(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {key.lower() for key, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in extra if h[0] not in present)]
            await send(message)

        return headed


def _token_shown(scope: Scope, headers: dict[str, str]) -> tuple[str | None, bool]:
    """The token the request shows (Bearer, cookie or ?token=), and whether it came in the query."""
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip(), False
    if "cookie" in headers:
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(headers["cookie"])
        except Exception:  # a malformed cookie header shows no token
            cookie = SimpleCookie()
        if COOKIE in cookie:
            return cookie[COOKIE].value, False
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0], True
    return None, False


async def _refuse(kind: str, receive: Receive, send: Send, status: int, ws_code: int, reason: str) -> None:
    if kind == "http":
        body = json.dumps({"detail": reason}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    message = await receive()  # websocket.connect
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})  # accepted only to tell the reason with the code
    await send({"type": "websocket.close", "code": ws_code, "reason": reason})


def public_address() -> str:
    """This machine's address on its default route (no packet is sent), for the URL to print."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def certificate_dir() -> Path:
    return data_dir() / "web"


def ensure_certificate(host: str, folder: Path | None = None) -> tuple[Path, Path]:
    """The self-signed certificate and key for serving `host` over HTTPS: made on first use
    (the key file owner-only, 0600), then reused while it covers `host` and has not expired."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = folder or certificate_dir()
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    names = _names_for(host)
    if cert_path.is_file() and key_path.is_file():
        try:
            existing = x509.load_pem_x509_certificate(cert_path.read_bytes())
            covered = set(map(str, existing.extensions.get_extension_for_class(x509.SubjectAlternativeName).value))
            fresh = existing.not_valid_after_utc > datetime.datetime.now(datetime.timezone.utc) + _DAY
            if fresh and {str(_san(name)) for name in names} <= covered:
                return cert_path, key_path
        except (ValueError, x509.ExtensionNotFound):
            pass  # damaged or foreign: made again
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cluelypro serve")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _DAY)
        .not_valid_after(now + CERT_DAYS * _DAY)
        .add_extension(x509.SubjectAlternativeName([_san(name) for name in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    with open_private(key_path, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    with open_private(cert_path, "wb") as handle:
        handle.write(certificate.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


_DAY = datetime.timedelta(days=1)


def _names_for(host: str) -> list[str]:
    names = ["localhost", "127.0.0.1"]
    for name in (public_address() if host in ("0.0.0.0", "::") else None, host):
        if name and name not in names and name not in ("0.0.0.0", "::"):
            names.append(name)
    return names


def _san(name: str) -> Any:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)
