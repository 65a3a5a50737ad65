"""Standard Webhooks signatures (https://www.standardwebhooks.com): secrets and headers.

A secret is `whsec_` + base64 of 32 random bytes; the HMAC key is those bytes. The
signature of a message is `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")),
one per secret, space-separated while a rotated secret still signs beside the new one.

>>> secret = "whsec_" + base64.b64encode(bytes(32)).decode()
>>> signature_header((secret,), "evt_1", 1700000000, b'{"a":1}')
'v1,R5K/RFGzAoe8pea03R5QB3/Wn06HVeTm9DTrXTZANbQ='
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(
    secrets_: Sequence[str], message_id: str, timestamp: int, body: bytes
) -> str:
    return " ".join(signature(s, message_id, timestamp, body) for s in secrets_)


def message_headers(
    secrets_: Sequence[str], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The headers of one delivery attempt (the timestamp is the attempt's)."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets_, message_id, timestamp, body),
        "content-type": "application/json",
        "user-agent": "leads-api-webhooks",
    }
