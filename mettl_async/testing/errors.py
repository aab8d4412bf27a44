"""Mettl's error codes, and the exception a route handler raises to answer with one."""

from __future__ import annotations

from typing import Final

__all__ = ["MESSAGES", "Reply"]

MESSAGES: Final = {
    "E000": "Some Error Occurred",
    "E400": "Request was not well-formed/Invalid parameters supplied.",
    "E401": "Authentication failed/Signature mismatch",
    "E403": "Access denied. The API key is not authorized for requested resource/action.",
    "E404": "Requested resource not found.",
    "E405": "HTTP Method not allowed for this API Request",
    "E408": "Request Timed out",
    "E422": "Signature expired.",
    "E503": "API Service is currently unavailable",
    "E504": "Invalid Timestamp",
    "E509": "Rate limit exceeded",
}


class Reply(Exception):
    """Raised inside the fake to answer with an error envelope."""

    def __init__(self, code: str, message: str | None = None, *, http_status: int = 200) -> None:
        self.code = code
        self.message = message or MESSAGES.get(code, "error")
        self.http_status = http_status
        super().__init__(code)
