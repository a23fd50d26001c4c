"""The rules of new accounts: usernames (normalised and reserved) and passwords (strong enough).

Usernames are compared in one form: Unicode NFKC, then case-folded, so ``ALICE``, ``Alice``
and ``alice`` are one account. Names an operator or the service might be mistaken for are
reserved for self-registration (``tradercoin users add`` may still use them).

A password is refused, with a sentence that says why, when it is the username, is on the
list of common and breached passwords that ships with zxcvbn (30,000 entries: the most
frequent passwords of Mark Burnett's 10-million-password corpus, via the zxcvbn package), or
scores below :data:`MIN_SCORE` on zxcvbn's strength estimate (0-4).
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

__all__ = [
    "MIN_SCORE",
    "RESERVED",
    "normalise_username",
    "password_problem",
    "username_problem",
]

ZXCVBN_MAX = 72  # zxcvbn refuses longer input; the first 72 characters are estimated
MIN_SCORE = 2  # zxcvbn: "somewhat guarded": about 10^8 guesses, far beyond a throttled login
USERNAME = re.compile(r"^[a-z0-9_.@-]{3,64}$")
RESERVED = frozenset(
    {
        "admin",
        "administrator",
        "root",
        "operator",
        "operators",
        "system",
        "sysadmin",
        "support",
        "security",
        "staff",
        "tradercoin",
        "superuser",
        "owner",
        "moderator",
        "null",
        "none",
        "anonymous",
        "api",
        "www",
    }
)


def normalise_username(name: str) -> str:
    """The one form a username is stored and looked up in (NFKC, case-folded, stripped)."""
    return unicodedata.normalize("NFKC", name).casefold().strip()


def username_problem(name: str) -> str | None:
    """Why ``name`` (already normalised) cannot be registered, or ``None``."""
    if not USERNAME.match(name):
        return "a username has 3-64 letters, digits or . _ @ - (case does not count)"
    if name in RESERVED or name.rstrip("0123456789") in RESERVED:
        return f"the username {name!r} is reserved; choose another"
    return None


@cache
def _common() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problem(username: str, password: str) -> str | None:
    """Why ``password`` is too weak for ``username``, as a sentence; ``None`` when it will do.

    Runs zxcvbn (a few milliseconds; on the first 72 characters): call it before hashing.
    """
    from zxcvbn import zxcvbn

    folded = unicodedata.normalize("NFKC", password).casefold()
    if len(password) < 8:
        return "the password must have at least 8 characters"
    if not folded.strip():
        return "the password must not be only spaces"
    if folded.strip() in (username, username[::-1]):
        return "the password must not be the username"
    if folded in _common() or folded.strip() in _common():
        return "that password is on the list of common, breached passwords; choose another"
    result = zxcvbn(password[:ZXCVBN_MAX], user_inputs=[username])
    if result["score"] < MIN_SCORE:
        hint = result["feedback"].get("warning") or "it would be guessed quickly"
        return f"the password is too easy to guess ({hint.rstrip('.').lower()}); use a longer one"
    return None
