"""Values and errors shared by every layer."""

from m2mhub.core.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    M2MHubError,
    NotFoundError,
    PayloadError,
    StoreError,
    UnavailableError,
)
from m2mhub.core.values import Reading, Role, Value

__all__ = [
    "AuthError",
    "ConflictError",
    "ForbiddenError",
    "M2MHubError",
    "NotFoundError",
    "PayloadError",
    "Reading",
    "Role",
    "StoreError",
    "UnavailableError",
    "Value",
]
