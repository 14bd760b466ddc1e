"""Signed PeerJS tokens and TURN credentials: pure functions over secrets and clocks.

A signed token lets a tenant's backend decide who may hold which peer id: it is
``v1.<expiry>.<signature>`` where the signature is HMAC-SHA256, keyed with the key's
signing secret, over ``"<api key>\\n<peer id>\\n<expiry>"`` (expiry in Unix seconds),
base64url without padding. The browser passes it as the PeerJS ``token`` option.

TURN credentials follow coturn's REST API (``use-auth-secret``): the username is
``"<expiry>:<peer id>"`` and the credential base64(HMAC-SHA1(shared secret, username)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

TOKEN_VERSION = "v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def is_ascii_number(text: str, max_digits: int = 12) -> bool:
    """Tell whether ``text`` is 1 to ``max_digits`` ASCII digits and nothing else.

    ``str.isdigit()`` alone also accepts ``"\u00b2"`` or ``"\u2460"``, which ``int()``
    refuses: every number that comes from outside is checked with this first.
    """
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


def token_signature(secret: str, api_key: str, peer_id: str, expiry: int) -> str:
    """The signature part of a token."""
    message = f"{api_key}\n{peer_id}\n{expiry}".encode("utf-8", "surrogatepass")
    return _b64(hmac.new(secret.encode(), message, hashlib.sha256).digest())


def mint_token(secret: str, api_key: str, peer_id: str, expiry: int) -> str:
    """A token allowing ``peer_id`` under ``api_key`` until ``expiry`` (Unix seconds)."""
    return f"{TOKEN_VERSION}.{expiry}.{token_signature(secret, api_key, peer_id, expiry)}"


def verify_token(secret: str, api_key: str, peer_id: str, token: str, now: float) -> bool:
    """Tell whether ``token`` was minted with ``secret`` for this key and id, unexpired."""
    if not secret:
        return False
    version, _, rest = token.partition(".")
    expiry_text, _, signature = rest.partition(".")
    if version != TOKEN_VERSION or not is_ascii_number(expiry_text) or not signature.isascii():
        return False
    expiry = int(expiry_text)
    if expiry < now:
        return False
    expected = token_signature(secret, api_key, peer_id, expiry)
    return hmac.compare_digest(expected.encode(), signature.encode())


def turn_credentials(shared_secret: str, peer_id: str, expiry: int) -> tuple[str, str]:
    """``(username, credential)`` for coturn's REST API."""
    username = f"{expiry}:{peer_id}"
    digest = hmac.new(shared_secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()
