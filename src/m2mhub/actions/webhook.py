"""Webhooks: a JSON POST to a URL, signed with HMAC-SHA256, retried until it lands.

``enqueue`` stores the delivery and returns its id at once; the delivery
worker sends it. Each attempt carries:

- ``X-M2MHub-Delivery``: the delivery id, the same on every attempt (receivers
  use it to ignore a repeat: delivery is at least once);
- ``X-M2MHub-Timestamp``: when this attempt was made, Unix seconds;
- ``X-M2MHub-Attempt``: 1 for the first attempt, 2 for the first retry...;
- ``X-M2MHub-Source``: who asked (``rule:<id>``, ``user:<email>``...);
- ``X-M2MHub-Signature``: ``sha256=<hex HMAC-SHA256 of the raw body>`` keyed
  with the secret, when the webhook has one (the scheme GitHub uses).

2xx is success. Connection errors, timeouts, 408, 429 and 5xx are retried
(429 and 503 after ``Retry-After`` if that is longer); any other answer is
final and makes the delivery a dead letter at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import msgspec

from m2mhub import __version__
from m2mhub.actions.outbox import DeliveryWorker, Outcome, parse_retry_after
from m2mhub.config import Settings
from m2mhub.core.errors import PayloadError
from m2mhub.core.timeutil import now_ms
from m2mhub.store.base import Store
from m2mhub.store.models import Delivery

SIGNATURE_HEADER: Final = "X-M2MHub-Signature"
DELIVERY_HEADER: Final = "X-M2MHub-Delivery"
TIMESTAMP_HEADER: Final = "X-M2MHub-Timestamp"
ATTEMPT_HEADER: Final = "X-M2MHub-Attempt"
SOURCE_HEADER: Final = "X-M2MHub-Source"
MAX_BODY_BYTES: Final = 262_144
MAX_URL_CHARS: Final = 2048
#: Headers a caller may not set: m2mhub's own, and those httpx computes.
_RESERVED: Final = frozenset({"content-type", "content-length", "host", "transfer-encoding"})
_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
#: Answers worth retrying (RFC 9110: 408 timeout, 429 too many requests; 5xx server errors).
_RETRYABLE: Final = frozenset({408, 429})


def sign(secret: str, body: bytes) -> str:
    """The value of ``X-M2MHub-Signature`` for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """True if ``header`` is the signature of ``body`` with ``secret`` (constant time)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def check_url(url: str) -> str:
    """An absolute http(s) URL, or :class:`PayloadError`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PayloadError(f"url: {url!r}; use an absolute http:// or https:// URL", field="url")
    if len(url) > MAX_URL_CHARS:
        raise PayloadError(f"url: longer than {MAX_URL_CHARS} characters", field="url")
    return url


#: Media types a webhook body may be sent as: JSON, or a JSON-based type such as
#: ``application/cloudevents+json`` (RFC 6839 structured syntax suffix).
_JSON_MEDIA_TYPE = re.compile(r"^application/([a-z0-9][a-z0-9.-]{0,63}\+)?json$")
_DEFAULT_CONTENT_TYPE: Final = "application/json"


def check_content_type(content_type: str, *, field: str = "content_type") -> str:
    """``application/json`` or ``application/<something>+json``, or :class:`PayloadError`."""
    if not _JSON_MEDIA_TYPE.match(content_type):
        raise PayloadError(
            f"{field}: {content_type!r} is not a JSON media type; use application/json or "
            "application/<type>+json (e.g. application/cloudevents+json)",
            field=field,
        )
    return content_type


def check_headers(headers: dict[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        if (
            not _HEADER_NAME.match(name)
            or name.lower() in _RESERVED
            or name.lower().startswith("x-m2mhub-")
        ):
            raise PayloadError(
                f"headers: {name!r} cannot be set (letters, digits and '-'; not Content-Type, "
                "Host or X-M2MHub-*)",
                field="headers",
            )
        if "\r" in value or "\n" in value or len(value) > 4096:
            raise PayloadError(f"headers: the value of {name!r} is not allowed", field="headers")
    return dict(headers)


def _with_content_type(headers: dict[str, str], content_type: str) -> dict[str, str]:
    if content_type != _DEFAULT_CONTENT_TYPE:
        headers["Content-Type"] = check_content_type(content_type)
    return headers


class WebhookService:
    """Queues webhooks and sends them for the delivery worker."""

    kind: Final = "webhook"

    def __init__(self, store: Store, settings: Settings, worker: DeliveryWorker) -> None:
        self.store = store
        self.settings = settings
        self.worker = worker
        self._client: httpx.AsyncClient | None = None
        worker.senders[self.kind] = self

    async def enqueue(
        self,
        *,
        tenant_id: int,
        source: str,
        url: str,
        payload: dict[str, Any],
        secret: str | None = None,
        headers: dict[str, str] | None = None,
        content_type: str = _DEFAULT_CONTENT_TYPE,
    ) -> str:
        """Store a webhook for delivery and return its id; it is sent in the background.

        The body is sent as ``content_type`` (a JSON media type). Raises
        :class:`PayloadError` for a URL that is not http(s), a body over 256 KiB, a header
        that cannot be set, or a content type that is not JSON.
        """
        try:
            body = msgspec.json.encode(payload)
        except (TypeError, msgspec.EncodeError) as exc:
            raise PayloadError(f"payload: not JSON: {exc}", field="payload") from None
        if len(body) > MAX_BODY_BYTES:
            raise PayloadError(f"payload: larger than {MAX_BODY_BYTES} bytes", field="payload")
        now = now_ms()
        delivery = Delivery(
            id=f"wh_{secrets.token_hex(8)}",
            tenant_id=tenant_id,
            kind=self.kind,
            source=source,
            target=check_url(url),
            body=body.decode(),
            secret=secret or None,
            headers=_with_content_type(check_headers(headers or {}), content_type),
            status="pending",
            attempts=0,
            next_ms=now,
            created_ms=now,
            last_attempt_ms=None,
            finished_ms=None,
            last_error=None,
            last_code=None,
        )
        await self.store.add_deliveries([delivery])
        self.worker.wake()
        return delivery.id

    # -- the sender, called by the delivery worker ------------------------------------

    async def send(self, delivery: Delivery) -> Outcome:
        """One attempt: POST the stored body with the m2mhub headers."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.settings.webhook_timeout_s,
                follow_redirects=False,
                headers={"User-Agent": f"m2mhub/{__version__}"},
            )
        body = delivery.body.encode()
        headers = {
            "Content-Type": _DEFAULT_CONTENT_TYPE,
            **delivery.headers,  # a stored Content-Type was checked on enqueue
            DELIVERY_HEADER: delivery.id,
            TIMESTAMP_HEADER: str(now_ms() // 1000),
            ATTEMPT_HEADER: str(delivery.attempts),
            SOURCE_HEADER: delivery.source,
        }
        if delivery.secret:
            headers[SIGNATURE_HEADER] = sign(delivery.secret, body)
        try:
            response = await self._client.post(delivery.target, content=body, headers=headers)
        except httpx.TimeoutException:
            return Outcome(False, error=f"no answer within {self.settings.webhook_timeout_s} s")
        except httpx.HTTPError as exc:
            return Outcome(False, error=f"could not connect: {type(exc).__name__}: {exc}")
        code = response.status_code
        if 200 <= code < 300:
            return Outcome(True, code=code)
        excerpt = response.text[:200].strip()
        error = f"HTTP {code}" + (f": {excerpt}" if excerpt else "")
        if code >= 500 or code in _RETRYABLE:
            retry_after = parse_retry_after(response.headers.get("retry-after"), now=now_ms())
            return Outcome(False, error=error, code=code, retry_after_s=retry_after)
        if 300 <= code < 400:
            error += f" (redirect to {response.headers.get('location')!r}: use the final URL)"
        return Outcome(False, retry=False, error=error, code=code)

    def display_target(self, delivery: Delivery) -> str:
        return delivery.target

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
