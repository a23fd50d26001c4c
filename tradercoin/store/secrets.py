"""Encryption of exchange keys at rest: AES-256-GCM under a master key from the environment.

``TRADERCOIN_MASTER_KEY`` holds one or more keys, ``kid:base64key[,kid:base64key...]``; the
first is current (new rows are encrypted under it), the others only decrypt older rows. A key
is 32 random bytes in (url-safe or standard) base64; ``tradercoin keys generate`` prints one.
Each ciphertext is stored with its key id and bound to its user by the associated data
``user:{user_id}|kid:{kid}``, so a row copied to another user does not decrypt.

Rotation without downtime: put the new key first and keep the old one after it, restart, run
``tradercoin keys rotate`` (re-encrypts every row under the new key), then drop the old key.

Without ``TRADERCOIN_MASTER_KEY`` a development key file (``Settings.master_key_file``) is
created with mode 0600 and a warning is logged.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tradercoin.config import ConfigError, Settings
from tradercoin.exchange.protocol import Credentials
from tradercoin.store.errors import CredentialsError

__all__ = ["SecretBox", "generate_key"]

log = logging.getLogger(__name__)

_KID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
NONCE_BYTES = 12
FORMAT_HINT = (
    "expected kid:base64key[,kid:base64key...] with 32-byte keys; "
    "`tradercoin keys generate` prints one"
)


def generate_key(kid: str = "k1") -> str:
    """A fresh ``kid:base64key`` entry for ``TRADERCOIN_MASTER_KEY``."""
    return f"{kid}:{base64.urlsafe_b64encode(os.urandom(32)).decode()}"


def _decode_key(text: str) -> bytes | None:
    padded = text + "=" * (-len(text) % 4)
    for decode in (base64.urlsafe_b64decode, base64.standard_b64decode):
        try:
            key = decode(padded.encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            continue
        if len(key) == 32:
            return key
    return None


def _parse_entries(text: str, source: str) -> list[tuple[str, bytes]]:
    entries: list[tuple[str, bytes]] = []
    for position, part in enumerate(text.strip().split(","), start=1):
        kid, sep, encoded = part.strip().partition(":")
        key = _decode_key(encoded.strip()) if sep else None
        if not _KID.match(kid) or key is None:
            raise ConfigError(f"{source}: key #{position} is malformed; {FORMAT_HINT}")
        if any(kid == seen for seen, _ in entries):
            raise ConfigError(f"{source}: key id {kid!r} appears twice; give each key its own id")
        entries.append((kid, key))
    return entries


class SecretBox:
    """AES-GCM with a current key and older keys for decryption only.

    Sync-coloured: encrypting a few hundred bytes takes microseconds.
    """

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise ConfigError(f"master key: no key given; {FORMAT_HINT}")
        self._ciphers = {kid: AESGCM(key) for kid, key in keys}
        self.current_kid = keys[0][0]
        self.key_ids = tuple(kid for kid, _ in keys)

    def __repr__(self) -> str:
        return f"SecretBox(current={self.current_kid!r}, keys={list(self.key_ids)!r})"

    @classmethod
    def parse(cls, text: str, *, source: str = "TRADERCOIN_MASTER_KEY") -> SecretBox:
        """Raises: ConfigError naming ``source`` (never echoing the key)."""
        return cls(_parse_entries(text, source))

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The box of ``settings.master_key``, or of the dev key file (created if absent).

        Raises:
            ConfigError: a malformed key, or a key file that cannot be read or created.
        """
        if settings.master_key:
            return cls.parse(settings.master_key)
        return cls.parse(
            _dev_key_text(settings.master_key_file), source=str(settings.master_key_file)
        )

    @classmethod
    def ephemeral(cls) -> SecretBox:
        """A box with a random key, for processes that never touch stored credentials."""
        return cls([("ephemeral", os.urandom(32))])

    @staticmethod
    def _aad(user_id: int, kid: str) -> bytes:
        return f"user:{user_id}|kid:{kid}".encode()

    def encrypt(self, user_id: int, plaintext: bytes) -> tuple[str, bytes]:
        """``(key id, nonce + ciphertext)`` under the current key, bound to ``user_id``."""
        nonce = os.urandom(NONCE_BYTES)
        kid = self.current_kid
        sealed = self._ciphers[kid].encrypt(nonce, plaintext, self._aad(user_id, kid))
        return kid, nonce + sealed

    def decrypt(self, user_id: int, kid: str, blob: bytes) -> bytes:
        """Raises: CredentialsError naming the user and the reason, never the data."""
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise CredentialsError(
                f"credentials of user {user_id} cannot be decrypted: master key {kid!r} is not "
                "in TRADERCOIN_MASTER_KEY (add it back, after the current key)"
            )
        try:
            return cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], self._aad(user_id, kid))
        except (InvalidTag, ValueError):
            raise CredentialsError(
                f"credentials of user {user_id} cannot be decrypted: wrong master key for "
                f"{kid!r} or corrupted ciphertext; set the keys again (`tradercoin keys set`)"
            ) from None

    def seal_credentials(self, user_id: int, creds: Credentials) -> tuple[str, bytes]:
        plain = json.dumps({"k": creds.api_key, "s": creds.api_secret}).encode()
        return self.encrypt(user_id, plain)

    def open_credentials(self, user_id: int, kid: str, blob: bytes) -> Credentials:
        """Raises: CredentialsError."""
        plain = self.decrypt(user_id, kid, blob)
        try:
            data = json.loads(plain)
            return Credentials(api_key=data["k"], api_secret=data["s"])
        except (ValueError, KeyError, TypeError):
            raise CredentialsError(
                f"credentials of user {user_id} cannot be decrypted: the plaintext is not in "
                "the expected format; set the keys again"
            ) from None


def _dev_key_text(path: Path) -> str:
    """Read the dev key file, creating it (mode 0600) with a warning when absent."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key_file(path)
    except OSError as exc:
        raise ConfigError(
            f"TRADERCOIN_MASTER_KEY is not set and the dev key file {path} cannot be created "
            f"({exc.strerror}); set TRADERCOIN_MASTER_KEY or TRADERCOIN_MASTER_KEY_FILE"
        ) from None
    text = generate_key("dev")
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    log.warning(
        "TRADERCOIN_MASTER_KEY is not set: created the development key file %s (mode 0600); "
        "set TRADERCOIN_MASTER_KEY in production",
        path,
    )
    return text


def _read_key_file(path: Path) -> str:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(
            f"dev key file {path} cannot be read ({exc.strerror}); fix its permissions or set "
            "TRADERCOIN_MASTER_KEY"
        ) from None
    if path.stat().st_mode & 0o077:
        log.warning("dev key file %s is readable by others; chmod 600 it", path)
    log.warning("TRADERCOIN_MASTER_KEY is not set: using the development key file %s", path)
    return text
