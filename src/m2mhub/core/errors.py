"""The error tree of m2mhub: one base, a shallow set of kinds.

Every error carries a machine-readable ``code`` and, where a field of the input
is at fault, the ``field`` path, so the API, the CLI and transports can report
it the same way.
"""

from __future__ import annotations


class M2MHubError(Exception):
    """Base of every error m2mhub raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class PayloadError(M2MHubError):
    """Input that cannot be accepted: malformed, wrong type, out of range."""

    code = "invalid_payload"


class AuthError(M2MHubError):
    """Missing or wrong credentials."""

    code = "unauthorized"


class ForbiddenError(M2MHubError):
    """Valid credentials that do not allow this action."""

    code = "forbidden"


class NotFoundError(M2MHubError):
    """The entity does not exist, or belongs to another tenant."""

    code = "not_found"


class ConflictError(M2MHubError):
    """The entity already exists or changed under the caller."""

    code = "conflict"


class UnavailableError(M2MHubError):
    """A service m2mhub relies on (a broker) refused or did not answer; try again."""

    code = "unavailable"


class StoreError(M2MHubError):
    """The database failed or holds something it should not."""

    code = "store_error"
