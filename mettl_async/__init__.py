"""mettl-async: the async Python client for the Mercer | Mettl Examine REST API."""

from __future__ import annotations

__version__ = "0.1.0.dev0"

from ._client import DEFAULT_BASE_URL, EU_BASE_URL, MettlClient
from ._errors import (
    APIError,
    AuthenticationError,
    ConfigurationError,
    DecodeError,
    IncompleteListingError,
    InvalidRequestError,
    MettlConnectionError,
    MettlError,
    MettlTimeoutError,
    NotFoundError,
    PaginationError,
    PermissionDeniedError,
    RateLimitError,
    RepeatedPageLinkError,
    RequestError,
    ServerError,
    TimestampError,
    TransportError,
    ValidationError,
    ValidationProblem,
)
from ._protocol import FilePart, path_segment
from ._retry import RetryPolicy
from ._session import ClientStats
from ._signing import SigningKey, signature, string_to_sign

__all__ = [
    "DEFAULT_BASE_URL",
    "EU_BASE_URL",
    "APIError",
    "AuthenticationError",
    "ClientStats",
    "ConfigurationError",
    "DecodeError",
    "FilePart",
    "IncompleteListingError",
    "InvalidRequestError",
    "MettlClient",
    "MettlConnectionError",
    "MettlError",
    "MettlTimeoutError",
    "NotFoundError",
    "PaginationError",
    "PermissionDeniedError",
    "RateLimitError",
    "RepeatedPageLinkError",
    "RequestError",
    "RetryPolicy",
    "ServerError",
    "SigningKey",
    "TimestampError",
    "TransportError",
    "ValidationError",
    "ValidationProblem",
    "__version__",
    "path_segment",
    "signature",
    "string_to_sign",
]
