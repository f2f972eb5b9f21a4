"""Console sign-ins: signed session cookies, each with its own CSRF token.

A session is a cookie the server signs (HMAC-SHA256) and stores nowhere: the tenant, the
user's e-mail, a fingerprint of the user's password hash, when it was issued and a random
CSRF token. Every request checks the signature and the age, then reads the user again
(cached for a few seconds), so a changed role applies at once to new requests and a changed
password or a deleted user ends all of that user's sessions.

Requests that change something (not GET, HEAD or OPTIONS) and are authenticated by the
cookie must also carry the session's CSRF token in the ``X-CSRF-Token`` header; the cookie
is ``SameSite=Lax`` as well, so other sites cannot send it with their forms.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from typing import Final

import msgspec
from starlette.requests import Request

from m2mhub.auth.secrets import hash_password, password_matches
from m2mhub.config import Settings
from m2mhub.core.errors import AuthError, ForbiddenError
from m2mhub.core.timeutil import now_ms
from m2mhub.registry.service import Principal
from m2mhub.store.base import Store
from m2mhub.store.models import User

COOKIE: Final = "m2mhub_session"
CSRF_HEADER: Final = "X-CSRF-Token"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
# How long a user read for a session is trusted without asking the store again (as for
# API keys): a role change or a deleted user applies in other processes within this.
_USER_CACHE_S: Final = 10.0


class Session(msgspec.Struct, frozen=True, array_like=True):
    """What a session cookie says, once its signature is checked."""

    tenant_id: int
    email: str
    fingerprint: str
    issued_ms: int
    csrf: str


def _fingerprint(user: User) -> str:
    """Changes when the password changes, so a new password ends the old sessions."""
    return hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_secret(settings: Settings) -> bytes:
    """The signing key: the setting, else a random key kept in ``data_dir/session-secret``."""
    if settings.session_secret:
        return settings.session_secret.encode()
    path = Path(settings.data_dir) / "session-secret"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: when several processes start together, the first one's key wins.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


class Sessions:
    """Issues and checks session cookies; signs users in with their password."""

    def __init__(self, store: Store, *, secret: bytes, max_age_s: int) -> None:
        self.store = store
        self.max_age_s = max_age_s
        self._secret = secret
        self._users: dict[tuple[int, str], tuple[float, User | None]] = {}
        self._dummy_hash: str | None = None

    # -- cookies -----------------------------------------------------------------------

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def issue(self, user: User) -> tuple[str, Session]:
        """A new session for ``user``: the cookie value and what it says."""
        session = Session(
            user.tenant_id, user.email, _fingerprint(user), now_ms(), secrets.token_urlsafe(24)
        )
        payload = _b64(msgspec.json.encode(session))
        return f"{payload}.{self._sign(payload)}", session

    def read(self, cookie: str | None) -> Session | None:
        """The session in a cookie whose signature holds and that has not expired."""
        if not cookie or "." not in cookie:
            return None
        payload, _, signature = cookie.partition(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            session = msgspec.json.decode(_unb64(payload), type=Session)
        except (ValueError, msgspec.DecodeError, msgspec.ValidationError):
            return None
        age_ms = now_ms() - session.issued_ms
        if age_ms < 0 or age_ms > self.max_age_s * 1000:
            return None
        return session

    # -- users ---------------------------------------------------------------------------

    async def _user(self, tenant_id: int, email: str) -> User | None:
        cached = self._users.get((tenant_id, email))
        if cached and cached[0] > time.monotonic():
            return cached[1]
        user = await self.store.get_user(tenant_id, email)
        self._users[(tenant_id, email)] = (time.monotonic() + _USER_CACHE_S, user)
        return user

    async def principal(self, session: Session) -> Principal | None:
        """Who the session acts as now, or None if the user is gone or changed password."""
        user = await self._user(session.tenant_id, session.email)
        if user is None or not user.password_hash or _fingerprint(user) != session.fingerprint:
            return None
        return Principal(user.tenant_id, user.role, f"user:{user.email}")

    async def sign_in(self, email: str, password: str, tenant: str | None = None) -> User:
        """The user with this e-mail and password, else :class:`AuthError`.

        Without ``tenant`` (its slug), the e-mail is looked up in every tenant; an e-mail
        known in several tenants then needs the tenant.
        """
        email = email.strip().lower()
        tenants = await self.store.list_tenants()
        if tenant:
            tenants = [t for t in tenants if t.slug == tenant.strip()]
        users = [u for t in tenants if (u := await self.store.get_user(t.id, email)) is not None]
        if len(users) > 1:
            raise AuthError(
                "this e-mail is in several tenants: enter the tenant too", field="tenant"
            )
        if not users or not users[0].password_hash:
            # As slow as a real check, so the answer's time does not tell which e-mails exist.
            if self._dummy_hash is None:
                self._dummy_hash = hash_password(secrets.token_urlsafe(16))
            password_matches(password, self._dummy_hash)
            raise AuthError("wrong e-mail or password")
        if not password_matches(password, users[0].password_hash):
            raise AuthError("wrong e-mail or password")
        return users[0]


async def session_principal(request: Request) -> Principal | None:
    """The principal of the request's session cookie, if it has a valid one.

    A request that changes something must carry the session's CSRF token in the
    ``X-CSRF-Token`` header (:class:`ForbiddenError` otherwise). The session is left in
    ``request.state.session`` for pages that render the token.
    """
    sessions: Sessions | None = getattr(request.app.state, "sessions", None)
    if sessions is None:
        return None
    session = sessions.read(request.cookies.get(COOKIE))
    if session is None:
        return None
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise ForbiddenError(
                f"a signed-in request that changes something needs the {CSRF_HEADER} header "
                "with the page's token; reload the page",
                field=CSRF_HEADER,
            )
    principal = await sessions.principal(session)
    if principal is not None:
        request.state.session = session
    return principal
