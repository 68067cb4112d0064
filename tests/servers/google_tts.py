"""Google Cloud Text-to-Speech's REST API and Google's OAuth 2.0 token endpoint, backed by RHVoice:

    POST /v1/text:synthesize  {input.text, voice.languageCode/name, audioConfig.audioEncoding
                              LINEAR16, sampleRateHertz, speakingRate} → {"audioContent": base64
                              of a WAV}; the JSON is sent in pieces so that a stream fault can cut
                              it (reset) or spoil it (malformed). Faults apply to /v1/ only.
    POST /token               the service-account JWT-bearer grant → {"access_token",
                              "expires_in", "token_type"}

A request is authorised as Google authorises a service account: `Authorization: Bearer` either an
access token this server issued, or a JWT the account signed itself (AIP-4111: iss = its email,
RS256 with one of its keys, a cloud-platform scope claim or the service's URL as audience) —
which is what google-cloud-texttospeech sends, so it never needs the token endpoint. The server
knows each account's public keys (`Accounts`), as Google does; `new_service_account` writes the
JSON key file a test hands to the client, with a freshly generated RSA key.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Form, Request
from google.auth import exceptions as auth_exceptions
from google.auth import jwt
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import ASGIApp

from .base import FaultMiddleware, Faults, stream_fault, with_stream_fault
from .embedded import EmbeddedVoice, pieces

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
SERVICE_AUDIENCE = "https://texttospeech.googleapis.com/"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # google-auth's grant `aud`, whatever token_uri is
MALFORMED = b'{"audioContent": "UklGRiQ'  # a JSON body cut short, as a broken proxy sends it


@dataclass
class Accounts:
    """What the server knows: each service account's public keys by key id, the access tokens it
    issued, and how each request was authorised."""

    keys: dict[str, dict[str, str]] = field(default_factory=dict)  # email -> {key id: public PEM}
    tokens: set[str] = field(default_factory=set)
    grants: int = 0  # access tokens issued by /token
    self_signed: int = 0  # requests authorised by a self-signed JWT
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def verify(self, assertion: str, audience: list[str] | None) -> dict:
        """The claims of a JWT one of the known accounts signed; ValueError if it is not one."""
        try:
            certs = self.keys.get(jwt.decode(assertion, verify=False).get("iss", ""))
            if not certs:
                raise ValueError("unknown service account")
            claims = jwt.decode(assertion, certs=certs, audience=audience)
        except (auth_exceptions.GoogleAuthError, ValueError) as error:
            raise ValueError(str(error)) from None
        if audience is None and SCOPE not in claims.get("scope", "").split() and claims.get("aud") != SERVICE_AUDIENCE:
            raise ValueError("the JWT has neither the cloud-platform scope nor the service's audience")
        return claims

    def authorised(self, request: Request) -> bool:
        credential = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if credential in self.tokens:
            return True
        try:
            self.verify(credential, audience=None)
        except ValueError:
            return False
        with self._lock:
            self.self_signed += 1
        return True

    def issue(self) -> str:
        token = "ya29." + secrets.token_urlsafe(32)
        with self._lock:
            self.tokens.add(token)
            self.grants += 1
        return token


def new_service_account(
    path: Path,
    token_uri: str,
    email: str = "cluelypro-test@cluelypro.iam.gserviceaccount.com",
    accounts: Accounts | None = None,
) -> Path:
    """Write a service-account JSON key with a fresh RSA key; `accounts` (the server) learns its
    public key. Without `accounts` the key is one the server has never seen."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    key_id = secrets.token_hex(20)
    if accounts is not None:
        accounts.keys.setdefault(email, {})[key_id] = public_pem
    info = {
        "type": "service_account",
        "project_id": "cluelypro-test",
        "private_key_id": key_id,
        "private_key": private_pem,
        "client_email": email,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "universe_domain": "googleapis.com",
    }
    path.write_text(json.dumps(info, indent=2), encoding="utf-8")
    return path


def google_error(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse({"error": {"code": status, "message": message, "status": code}}, status)


def create_app(accounts: Accounts, voice: EmbeddedVoice, faults: Faults, token_path: str = "/token") -> ASGIApp:
    app = FastAPI()
    service = FastAPI()
    service.state.requests = []  # the JSON bodies of text:synthesize, for tests to inspect

    @app.post(token_path)
    async def token(request: Request, grant_type: str = Form(...), assertion: str = Form(...)) -> Response:
        if grant_type != JWT_GRANT:
            return JSONResponse({"error": "unsupported_grant_type", "error_description": grant_type}, 400)
        try:
            claims = accounts.verify(assertion, audience=[str(request.url), GOOGLE_TOKEN_AUDIENCE])
        except ValueError:
            return JSONResponse({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, 400)
        if SCOPE not in claims.get("scope", "").split():
            return JSONResponse({"error": "invalid_scope", "error_description": "Invalid OAuth scope."}, 400)
        return JSONResponse({"access_token": accounts.issue(), "expires_in": 3599, "token_type": "Bearer"})

    @service.post("/text:synthesize")
    async def synthesize(request: Request) -> Response:
        if not accounts.authorised(request):
            return google_error(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
                "cookie or other valid authentication credential.",
                "UNAUTHENTICATED",
            )
        body = await request.json()
        service.state.requests.append(body)
        config = body.get("audioConfig", {})
        if config.get("audioEncoding") != "LINEAR16":
            return google_error(400, "this server synthesises LINEAR16 only", "INVALID_ARGUMENT")
        if not body.get("voice", {}).get("languageCode"):
            return google_error(400, "Voice language code is required.", "INVALID_ARGUMENT")
        wav = await run_in_threadpool(
            voice.wav,
            body["input"]["text"],
            float(config.get("speakingRate", 1.0)),
            int(config.get("sampleRateHertz", 24000)),
        )
        answer = json.dumps({"audioContent": base64.b64encode(wav).decode()}).encode()
        return StreamingResponse(
            with_stream_fault(pieces(answer), stream_fault(request), MALFORMED), media_type="application/json"
        )

    app.mount("/v1", FaultMiddleware(service, faults))
    app.state.service = service
    return app
