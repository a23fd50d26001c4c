"""Binance's error bodies, as the simulator answers them.

Every client mistake becomes an :class:`ApiError` carrying Binance's own code, message and
HTTP status; the REST layer turns it into ``{"code": ..., "msg": ...}``. Messages follow the
USDⓈ-M error-code page (reference §4).
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "bad_precision",
    "illegal_chars",
    "mandatory",
    "one_of_mandatory",
]

DECIMAL_RANGE = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
INT_RANGE = r"^[0-9]{1,20}$"


class ApiError(Exception):
    """A Binance error answer: HTTP ``status`` with body ``{"code": code, "msg": msg}``."""

    def __init__(
        self, code: int, msg: str, status: int = 400, *, retry_after: int | None = None
    ) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status
        self.retry_after = retry_after
        self.headers: list[tuple[bytes, bytes]] = []

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


def mandatory(name: str) -> ApiError:
    return ApiError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def one_of_mandatory(first: str, second: str) -> ApiError:
    return ApiError(-1102, f"Param '{first}' or '{second}' must be sent, but both were empty/null!")


def illegal_chars(name: str, legal: str) -> ApiError:
    return ApiError(
        -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    )


def bad_precision() -> ApiError:
    return ApiError(-1111, "Precision is over the maximum defined for this asset.")
