"""Redaction: tokens shaped like credentials never survive `redact`, whatever text surrounds
them, and ordinary Russian or English text passes unchanged."""

from __future__ import annotations

import base64
import json
import textwrap

from hypothesis import assume, given
from hypothesis import strategies as st

from cluelypro.secrets import MASK, redact

BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
PEM_KINDS = ("", "RSA ", "EC ", "DSA ", "OPENSSH ", "ENCRYPTED ")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


json_objects = st.dictionaries(
    st.text(min_size=1, max_size=12), st.one_of(st.text(max_size=40), st.integers()), min_size=1, max_size=6
)


@st.composite
def jwts(draw) -> str:
    """header.payload.signature, each base64url; header and payload are JSON objects."""
    header = b64url(json.dumps(draw(json_objects)).encode())
    payload = b64url(json.dumps(draw(json_objects)).encode())
    return f"{header}.{payload}.{b64url(draw(st.binary(max_size=64)))}"


google_access_tokens = st.text(alphabet=BASE64URL, min_size=30, max_size=220).map(lambda rest: "ya29." + rest)


@st.composite
def pem_keys(draw) -> tuple[str, list[str]]:
    """A PEM private key and the lines of its key material (newlines real, or escaped as in JSON)."""
    kind = draw(st.sampled_from(PEM_KINDS))
    lines = textwrap.wrap(base64.b64encode(draw(st.binary(min_size=48, max_size=600))).decode(), 64)
    newline = draw(st.sampled_from(["\n", "\r\n", "\\n"]))
    block = newline.join([f"-----BEGIN {kind}PRIVATE KEY-----", *lines, f"-----END {kind}PRIVATE KEY-----"])
    return block, lines


ordinary_text = st.text(
    alphabet="абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?()«»—-–'\"\n",
    max_size=300,
)


@given(jwts(), st.text(), st.text())
def test_a_jwt_never_survives(token: str, before: str, after: str) -> None:
    payload = token.split(".")[1]
    assume(payload not in before + MASK + after)
    redacted = redact(before + token + after)
    assert payload not in redacted and MASK in redacted


@given(google_access_tokens, st.text(), st.text())
def test_a_google_access_token_never_survives(token: str, before: str, after: str) -> None:
    assume(token[5:] not in before + MASK + after)
    redacted = redact(before + token + after)
    assert token[5:] not in redacted and MASK in redacted


@given(pem_keys(), st.text(), st.text())
def test_a_pem_private_key_never_survives(key: tuple[str, list[str]], before: str, after: str) -> None:
    block, lines = key
    redacted = redact(before + block + after)
    assert MASK in redacted
    assert not [line for line in lines if len(line) >= 16 and line in redacted]


@given(pem_keys(), st.text())
def test_a_pem_key_cut_off_before_its_end_line_is_masked_to_the_end(key: tuple[str, list[str]], before: str) -> None:
    block, lines = key
    redacted = redact(before + block[: len(block) // 2])
    assert not [line[:16] for line in lines if len(line) >= 16 and line[:16] in redacted]


@given(ordinary_text)
def test_ordinary_text_is_unchanged(text: str) -> None:
    assert redact(text) == text


def test_real_sentences_are_unchanged() -> None:
    for text in (
        "Кератин — основной белок волос.",
        "Сколько будет стоить 60 тысяч тенге?",
        "eyes.eyJane? ya29 is a number; BEGIN PRIVATE KEY is a phrase.",
        "The key-value store returned -----BEGIN CERTIFICATE----- (public).",
    ):
        assert redact(text) == text
