"""Request authentication as Binance does it: the API-key header, the signature over the raw
``query + body`` (HMAC-SHA256 hex, or Ed25519 base64 URL-encoded), and the timing rule."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tradercoin.exchange.sim.engine import Account
from tradercoin.exchange.sim.errors import ApiError, illegal_chars, mandatory

__all__ = ["check_api_key", "check_signature", "check_timestamp", "sign_hmac"]

DEFAULT_RECV_WINDOW = 5000


def sign_hmac(secret: bytes, payload: bytes) -> str:
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()


def check_api_key(api_key: str | None, accounts: Mapping[str, Account]) -> Account:
    """The account of the ``X-MBX-APIKEY`` header.

    Raises:
        ApiError: -2014 (HTTP 401) when the header is missing or malformed, -2015 (HTTP 401)
            when no account has that key.
    """
    if not api_key or len(api_key) != 64 or not api_key.isascii() or not api_key.isalnum():
        raise ApiError(-2014, "API-key format invalid.", 401)
    account = accounts.get(api_key)
    if account is None:
        raise ApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
    return account


def check_signature(account: Account, raw_query: bytes, raw_body: bytes) -> None:
    """Verify ``signature``, the last parameter of ``query + body`` (python-binance's rule).

    Raises:
        ApiError: -1102 when no signature was sent, -1022 when it does not verify.
    """
    total = raw_query + raw_body
    if total.startswith(b"signature="):
        payload, signature = b"", total[len(b"signature=") :]
    elif b"&signature=" in total:
        payload, signature = total.rsplit(b"&signature=", 1)
    else:
        raise mandatory("signature")
    if not signature or b"&" in signature or not _verifies(account, payload, signature):
        raise ApiError(-1022, "Signature for this request is not valid.")


def _verifies(account: Account, payload: bytes, signature: bytes) -> bool:
    if account.secret is not None:
        expected = sign_hmac(account.secret, payload).encode()
        return hmac.compare_digest(expected, signature.lower())
    if account.ed25519_public is None:
        return False
    try:
        raw = base64.b64decode(unquote(signature.decode("ascii")), validate=True)
        Ed25519PublicKey.from_public_bytes(account.ed25519_public).verify(raw, payload)
    except (InvalidSignature, binascii.Error, UnicodeDecodeError, ValueError):
        return False
    return True


def check_timestamp(params: Mapping[str, str], server_ms: int) -> None:
    """Binance's rule: ``timestamp < server + 1000`` and ``server - timestamp <= recvWindow``.

    Raises:
        ApiError: -1102 for a missing timestamp, -1100 for a malformed one or recvWindow,
            -1021 (either message) when outside the window.
    """
    raw = params.get("timestamp")
    if not raw:
        raise mandatory("timestamp")
    timestamp = _digits(raw, "timestamp")
    window_raw = params.get("recvWindow")
    window = _digits(window_raw, "recvWindow") if window_raw else DEFAULT_RECV_WINDOW
    if timestamp >= server_ms + 1000:
        raise ApiError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if server_ms - timestamp > window:
        raise ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")


def _digits(raw: str, name: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 20:
        raise illegal_chars(name, r"^[0-9]{1,20}$")
    return int(raw)
