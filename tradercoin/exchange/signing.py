"""Request signing for Binance USDⓈ-M futures REST.

The payload is the query string concatenated with the form body (no ``&`` between them), as
the bytes are sent: percent-encode first, sign second. The signature is appended last as
``&signature=...``.

* HMAC-SHA256 (the usual API key + secret): hex digest.
* Ed25519 (**experimental**): base64 of the RFC 8032 signature, URL-encoded. Binance documents
  Ed25519 keys only for the WebSocket API (``session.logon``); on fapi REST it is unverified,
  although python-binance and the official SDK send it there. Use it against the simulator, or
  at your own risk.
* RSA (PKCS#8, RSASSA-PKCS1-v1_5 with SHA-256, base64, URL-encoded): documented for fapi REST.

:func:`signer_for` picks the scheme from the secret: a PEM private key means Ed25519 or RSA,
anything else is an HMAC secret. A signer never exposes its key in ``repr``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Protocol
from urllib.parse import quote

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

__all__ = [
    "Ed25519Signer",
    "HmacSigner",
    "RsaSigner",
    "Signer",
    "hmac_sha256",
    "signer_for",
]


class Signer(Protocol):
    def sign(self, payload: str) -> str:
        """The value of ``signature=`` for ``payload``, already safe to put in a query."""
        ...


def encode_query(params: list[tuple[str, str]]) -> str:
    """The query string that is sent and signed, byte for byte: UTF-8, percent-encoded
    (nothing left unescaped but ``A-Za-z0-9-._~``), in the given order."""
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in params)


def hmac_sha256(secret: str, payload: str) -> str:
    """Hex HMAC-SHA256 of the UTF-8 ``payload`` under ``secret``."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _b64_quoted(raw: bytes) -> str:
    return quote(base64.b64encode(raw).decode(), safe="")


class HmacSigner:
    __slots__ = ("_key",)

    def __init__(self, secret: str) -> None:
        self._key = secret.encode()

    def sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "HmacSigner(...)"


class Ed25519Signer:
    """Experimental: Ed25519 on fapi REST is not documented by Binance (see module doc)."""

    __slots__ = ("_key",)

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self._key = key

    def sign(self, payload: str) -> str:
        return _b64_quoted(self._key.sign(payload.encode()))

    def __repr__(self) -> str:
        return "Ed25519Signer(...)"


class RsaSigner:
    __slots__ = ("_key",)

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self._key = key

    def sign(self, payload: str) -> str:
        raw = self._key.sign(payload.encode(), padding.PKCS1v15(), hashes.SHA256())
        return _b64_quoted(raw)

    def __repr__(self) -> str:
        return "RsaSigner(...)"


def signer_for(secret: str) -> Signer:
    """The signer for one account's secret.

    Raises:
        ValueError: the secret is a PEM block that is not an unencrypted Ed25519 or RSA
            private key (the message never contains the secret).
    """
    if not secret.lstrip().startswith("-----BEGIN"):
        return HmacSigner(secret)
    try:
        key = serialization.load_pem_private_key(secret.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("the API secret is a PEM block but not a usable private key") from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return Ed25519Signer(key)
    if isinstance(key, rsa.RSAPrivateKey):
        return RsaSigner(key)
    raise ValueError(f"unsupported private key type {type(key).__name__}")
