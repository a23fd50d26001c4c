"""SecretBox: key parsing, AAD binding, wrong keys, the dev key file and rotation."""

from __future__ import annotations

import base64
import logging
import stat
from pathlib import Path

import pytest

from tradercoin.clock import FixedEpochClock
from tradercoin.config import ConfigError, Settings
from tradercoin.exchange.protocol import Credentials
from tradercoin.store import CredentialsError, SecretBox, Store, User, generate_key, open_store

KEYS = Credentials(api_key="public-key-9876", api_secret="top-secret-value")


def test_seal_and_open_bind_to_the_user() -> None:
    box = SecretBox.parse(generate_key("a"))
    kid, blob = box.seal_credentials(7, KEYS)
    assert kid == "a" and b"top-secret" not in blob
    assert box.open_credentials(7, kid, blob) == KEYS
    with pytest.raises(CredentialsError, match="credentials of user 8 cannot be decrypted"):
        box.open_credentials(8, kid, blob)


def test_wrong_or_missing_key_and_corruption_are_clear() -> None:
    box = SecretBox.parse(generate_key("a"))
    kid, blob = box.seal_credentials(1, KEYS)
    other = SecretBox.parse(generate_key("a"))
    with pytest.raises(CredentialsError, match="wrong master key for 'a'"):
        other.open_credentials(1, kid, blob)
    with pytest.raises(CredentialsError, match="master key 'a' is not in"):
        SecretBox.parse(generate_key("b")).open_credentials(1, kid, blob)
    corrupted = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(CredentialsError, match="corrupted"):
        box.open_credentials(1, kid, corrupted)


def test_older_keys_still_decrypt() -> None:
    old = generate_key("old")
    kid, blob = SecretBox.parse(old).seal_credentials(3, KEYS)
    both = SecretBox.parse(f"{generate_key('new')},{old}")
    assert both.current_kid == "new" and both.key_ids == ("new", "old")
    assert both.open_credentials(3, kid, blob) == KEYS
    assert both.seal_credentials(3, KEYS)[0] == "new"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nokid",
        "k1:not-base64!!",
        "k1:" + base64.b64encode(b"short").decode(),
        "bad id:" + base64.b64encode(bytes(32)).decode(),
        f"{generate_key('k1')},{generate_key('k1')}",
    ],
)
def test_malformed_master_key_is_one_clear_line(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        SecretBox.parse(text)
    message = str(info.value)
    assert "\n" not in message and message.startswith("TRADERCOIN_MASTER_KEY: ")
    secret_part = text.partition(":")[2]
    assert not secret_part or secret_part not in message


def test_standard_base64_is_accepted_too() -> None:
    key = base64.standard_b64encode(bytes(range(32))).decode()
    assert SecretBox.parse(f"std:{key}").current_kid == "std"


def test_repr_shows_no_key() -> None:
    text = generate_key("k1")
    assert text.partition(":")[2] not in repr(SecretBox.parse(text))


def test_dev_key_file_is_created_private_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "dev.key"
    settings = Settings(master_key=None, master_key_file=path)
    with caplog.at_level(logging.WARNING, logger="tradercoin.store.secrets"):
        first = SecretBox.from_settings(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "created the development key file" in caplog.text
    assert path.read_text().strip().partition(":")[2] not in caplog.text
    second = SecretBox.from_settings(settings)
    kid, blob = first.seal_credentials(1, KEYS)
    assert second.open_credentials(1, kid, blob) == KEYS


def test_env_key_wins_and_bad_file_is_clear(tmp_path: Path) -> None:
    settings = Settings(master_key=generate_key("env"), master_key_file=tmp_path / "unused")
    assert SecretBox.from_settings(settings).current_kid == "env"
    assert not (tmp_path / "unused").exists()
    bad = tmp_path / "bad.key"
    bad.write_text("garbage")
    with pytest.raises(ConfigError, match=f"{bad}: key #1 is malformed"):
        SecretBox.from_settings(Settings(master_key_file=bad))
    with pytest.raises(ConfigError, match="cannot be created"):
        SecretBox.from_settings(Settings(master_key_file=tmp_path / "missing-dir" / "k"))


async def test_rotation_re_encrypts_under_the_newest_key(
    db_url: str, clock: FixedEpochClock
) -> None:
    old = generate_key("old")
    async with open_store(db_url, secrets=SecretBox.parse(old), clock=clock) as store:
        users = [await store.create_user(f"u{i}", "h") for i in range(3)]
        for user in users:
            await store.set_credentials(user.id, KEYS)
    new = generate_key("new")
    rotated_box = SecretBox.parse(f"{new},{old}")
    async with open_store(db_url, secrets=rotated_box, clock=clock) as store:
        assert await store.get_credentials(users[0].id) == KEYS  # readable before rotating
        assert await store.rotate_credentials() == 3
        assert await store.rotate_credentials() == 0
        info = await store.credential_info(users[1].id)
        assert info is not None and info.key_id == "new" and info.rotated_at is not None
    new_only = SecretBox.parse(new)
    async with open_store(db_url, secrets=new_only, clock=clock) as store:
        assert [await store.get_credentials(u.id) for u in users] == [KEYS] * 3


async def test_rotation_skips_rows_it_cannot_read(
    store: Store, alice: User, bob: User, caplog: pytest.LogCaptureFixture
) -> None:
    await store.set_credentials(alice.id, KEYS)
    store.secrets = SecretBox.parse(generate_key("k2"))
    await store.set_credentials(bob.id, KEYS)
    with caplog.at_level(logging.WARNING):
        assert await store.rotate_credentials() == 0
    assert f"credentials of user {alice.id} cannot be decrypted" in caplog.text
    assert await store.get_credentials(bob.id) == KEYS
    with pytest.raises(CredentialsError):
        await store.get_credentials(alice.id)
