"""The store's errors: each message is one line that says what is wrong and how to fix it,
and never carries a secret."""

from __future__ import annotations

__all__ = [
    "BadDatabaseURL",
    "CommitUnknown",
    "CredentialsError",
    "DuplicateUser",
    "OrderConflict",
    "StoreClosed",
    "StoreError",
    "UnknownUser",
]


class StoreError(Exception):
    """The database cannot do what was asked (bad URL, unreachable server, bad data)."""


class BadDatabaseURL(StoreError):
    """The database URL is malformed or names a database tradercoin does not support."""


class DuplicateUser(StoreError):
    """A user with that name already exists."""


class UnknownUser(StoreError):
    """No user has that id."""


class OrderConflict(StoreError):
    """A change cannot be stored as given (unknown order id, duplicate client order id, ...).

    Only the caller that submitted the change receives it; the rest of its batch commits.
    """


class CommitUnknown(StoreError):
    """The connection failed while COMMIT was in flight: the write may or may not be stored.

    Never retried (a retry could store it twice); the caller re-reads to learn the outcome.
    """


class StoreClosed(StoreError):
    """The store was used after ``open_store`` exited."""


class CredentialsError(Exception):
    """One user's stored credentials cannot be decrypted (wrong master key, corrupted row).

    The message names the user and the reason, never a key or a secret.
    """
