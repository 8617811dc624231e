"""One masking rule for secrets: a URI's password (``scheme://user:pass@host``) and named secret values.

Every place that prints, logs, links or stores a URI goes through :func:`mask_uri` or :func:`redact`; the MLflow
tracking URI is also split at the settings (:func:`split_userinfo`) so that its credentials travel only in MLflow's
own ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` variables and never inside the URI.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit, urlunsplit

MASK = "****"

# scheme://userinfo@ where userinfo holds a ':' (user:password) or is a bare token (redis://:pw@, https://token@);
# RFC 3986 3.2.1: userinfo cannot contain '/', '@' is its end.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@\s'\"<>]+)@")


def mask(secret: str, keep: int = 4) -> str:
    """Keep the first characters of an identifier, hide the rest."""
    return secret[:keep] + MASK if len(secret) > keep else MASK


def mask_uri(uri: str) -> str:
    """Hide the password of a URI's userinfo (``scheme://user:pass@host`` -> ``scheme://user:****@host``)."""
    return redact(uri)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every URI password and every given secret (also URL-quoted/unquoted) replaced by ``****``."""

    def _mask_userinfo(match: re.Match[str]) -> str:
        user, sep, _password = match["userinfo"].partition(":")
        # "user:pass@" keeps the user (it helps the reader); a lone token ("ghp_x@", ":pw@") is all secret
        return f"{match['scheme']}{user}:{MASK}@" if sep and user else f"{match['scheme']}{MASK}@"

    text = _USERINFO.sub(_mask_userinfo, text)
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        for form in {secret, unquote(secret), quote(secret, safe="")}:
            text = text.replace(form, MASK)
    return text


def split_userinfo(uri: str) -> tuple[str, str | None, str | None]:
    """``(uri without userinfo, username, password)``; user and password URL-decoded, None when absent."""
    parts = urlsplit(uri)
    if not parts.scheme or "@" not in parts.netloc:
        return uri, None, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, sep, password = userinfo.partition(":")
    return (urlunsplit(parts._replace(netloc=host)), unquote(user) or None, unquote(password) if sep else None)


class RedactingFilter(logging.Filter):
    """A logging filter that renders a record once with :func:`redact` applied (args cleared so no handler
    re-renders the raw values)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = list(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the rendered message; never drops a record."""
        record.msg, record.args = redact(record.getMessage(), self.secrets), None
        return True
