"""Generating and checking secrets.

API keys and device tokens are 32 random bytes, so a single SHA-256 is the
right hash for them (nothing to brute-force); passwords are low-entropy and
get scrypt with a per-password salt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

API_KEY_PREFIX: Final = "m2k_"
DEVICE_TOKEN_PREFIX: Final = "m2d_"

# scrypt parameters from RFC 7914 section 2's interactive-login guidance.
_SCRYPT_N: Final = 2**14
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1


def hash_secret(secret: str) -> str:
    """SHA-256 of a high-entropy secret, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, expected_hash: str) -> bool:
    """Constant-time comparison of ``secret`` with a stored hash."""
    return hmac.compare_digest(hash_secret(secret), expected_hash)


def new_device_token() -> str:
    """A device token: ``m2d_`` and 43 URL-safe characters."""
    return DEVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_api_key() -> tuple[str, str]:
    """A new API key as (key id, full key); the id is public, the key is shown once."""
    key_id = secrets.token_hex(6)
    return key_id, f"{API_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def api_key_id(key: str) -> str | None:
    """The id part of an API key, or None if ``key`` is not shaped like one."""
    if not key.startswith(API_KEY_PREFIX):
        return None
    key_id, sep, _ = key[len(API_KEY_PREFIX) :].partition("_")
    return key_id if sep and key_id else None


def new_device_id() -> str:
    """A short, URL- and topic-safe device id."""
    return base64.b32encode(secrets.token_bytes(10)).decode().lower()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return f"scrypt${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(
        password.encode(), salt=bytes.fromhex(salt_hex), n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P
    )
    return hmac.compare_digest(digest.hex(), digest_hex)


def new_password() -> str:
    """A random password to hand to a person (demo accounts): 16 letters and digits
    in groups of four, about 80 bits."""
    alphabet = "abcdefghijkmnpqrstuvwxyz23456789"  # no l, o, 0, 1: easy to read and type
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4))
