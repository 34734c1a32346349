"""Passwords and tokens, pure: hashing with scrypt (standard library), tokens
as random strings of which only a SHA-256 digest is ever stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

ROLES = ("agent", "supervisor", "admin", "integrator")
TOKEN_PREFIX = "cti_"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt${n}${r}${p}$".format(**_SCRYPT) + _b64(salt) + "$" + _b64(digest)


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=_unb64(salt), dklen=32, n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(candidate, _unb64(digest))


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_password() -> str:
    """A password an admin can read out: 4 groups of 4 letters and digits."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# What a password is checked against when the user is unknown, disabled or has no password: the
# parameters of a new hash, a fixed salt, a digest of zeros no password gives. The check costs what
# a real one does, so the time of an answer does not tell whether the user exists.
DUMMY_HASH = "scrypt${n}${r}${p}$".format(**_SCRYPT) + _b64(b"cti-no-such-user") + "$" + _b64(bytes(32))
