"""Signing against the reference's vectors (binance-futures.md §3) and RFC 8032."""

from __future__ import annotations

import base64
from urllib.parse import unquote

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.hashes import SHA256

from tradercoin.exchange.signing import (
    Ed25519Signer,
    HmacSigner,
    RsaSigner,
    hmac_sha256,
    signer_for,
)

DOC_SECRET = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
DOC_QUERY = (
    "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC"
    "&recvWindow=5000&timestamp=1591702613943"
)


def test_hmac_doc_vector() -> None:
    expected = "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
    assert hmac_sha256(DOC_SECRET, DOC_QUERY) == expected
    assert HmacSigner(DOC_SECRET).sign(DOC_QUERY) == expected


def test_hmac_mixed_query_and_body_vector() -> None:
    query = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC"
    body = "quantity=1&price=9000&recvWindow=5000&timestamp=1591702613943"
    expected = "30baaf0fab549bbeda7f5ef201898b34122da25fd23c646cac2c529aebe670a4"
    assert HmacSigner(DOC_SECRET).sign(query + body) == expected


# RFC 8032 section 7.1, TEST 1 (empty message).
RFC_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def _pem(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def test_ed25519_rfc8032_vector_is_base64_url_encoded() -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(RFC_SECRET)
    signature = Ed25519Signer(key).sign("")
    assert base64.b64decode(unquote(signature)) == RFC_SIGNATURE
    assert not set(signature) & set("+/=")


def test_signer_for_picks_the_scheme_from_the_secret() -> None:
    ed_key = ed25519.Ed25519PrivateKey.from_private_bytes(RFC_SECRET)
    assert isinstance(signer_for(DOC_SECRET), HmacSigner)
    ed = signer_for(_pem(ed_key))
    assert isinstance(ed, Ed25519Signer)
    signature = base64.b64decode(unquote(ed.sign(DOC_QUERY)))
    ed_key.public_key().verify(signature, DOC_QUERY.encode())


def test_rsa_signature_verifies() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = signer_for(_pem(key))
    assert isinstance(signer, RsaSigner)
    raw = base64.b64decode(unquote(signer.sign(DOC_QUERY)))
    key.public_key().verify(raw, DOC_QUERY.encode(), padding.PKCS1v15(), SHA256())


def test_bad_pem_says_so_without_the_secret() -> None:
    secret = "-----BEGIN PRIVATE KEY-----\nnot-a-key-at-all-SECRETVALUE\n-----END PRIVATE KEY-----"
    with pytest.raises(ValueError, match="PEM") as info:
        signer_for(secret)
    assert "SECRETVALUE" not in str(info.value)


def test_signers_never_show_their_keys() -> None:
    assert DOC_SECRET not in repr(HmacSigner(DOC_SECRET))
    key = ed25519.Ed25519PrivateKey.from_private_bytes(RFC_SECRET)
    assert repr(Ed25519Signer(key)) == "Ed25519Signer(...)"
