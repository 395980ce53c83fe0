"""Keep secrets and big values out of messages: redact credentials, quote bounded excerpts.

Used wherever a URL, a header or a user's value can reach stdout, a log, a dry-run document or a manifest.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Iterable
from typing import Any

REDACTED = "<redacted>"
EXCERPT_CHARS = 80

# scheme://user:password@host or scheme://token@host: everything between "//" and the last "@" of the authority
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#@\s]*)@")
# ?token=..., &access_token=..., api_key=..., password=... in query strings or key=value text
_SECRET_PARAM = re.compile(
    r"(?P<key>(?:^|(?<=[?&;\s,\"']))(?:access_token|refresh_token|id_token|token|api[_-]?key|apikey|password|passwd|"
    r"secret|client_secret|sig|signature|x-amz-signature|x-amz-credential|x-goog-signature|x-goog-credential)=)"
    r"(?P<value>[^&#\s\"',;]+)",
    re.IGNORECASE,
)
# Authorization: <anything>, and a bare "Bearer xyz"
_AUTH_HEADER = re.compile(r"(?P<key>\bauthorization\b[\"']?\s*[:=]\s*[\"']?)(?P<value>[^\"'\r\n,}]+)", re.IGNORECASE)
_BEARER = re.compile(r"(?P<key>\bBearer\s+)(?P<value>[A-Za-z0-9\-._~+/=]{4,})", re.IGNORECASE)


def redact(text: Any) -> str:
    """``text`` with URL credentials, bearer/basic tokens and secret query parameters replaced by ``<redacted>``.

    Args:
        text: anything; non-strings are ``str()``-ed first.
    Returns:
        The redacted text.
    """
    text = str(text)

    def userinfo(match: re.Match) -> str:
        info = match.group("userinfo")
        if not info:
            return match.group(0)
        user = info.split(":", 1)[0] if ":" in info else ""
        return f"{match.group('scheme')}{user + ':' if user else ''}{REDACTED}@"

    text = _URL_USERINFO.sub(userinfo, text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group('key')}{REDACTED}", text)
    text = _BEARER.sub(lambda m: f"{m.group('key')}{REDACTED}", text)
    return _SECRET_PARAM.sub(lambda m: f"{m.group('key')}{REDACTED}", text)


def redact_obj(obj: Any) -> Any:
    """:func:`redact` applied to every string (keys and values) of a JSON-like structure."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if isinstance(key, str) and key.lower() in ("authorization", "proxy-authorization") and value:
                scheme = str(value).split(" ", 1)[0] if " " in str(value) else ""
                out[key] = f"{scheme} {REDACTED}" if scheme else REDACTED  # "Bearer <redacted>"
            else:
                out[redact(key) if isinstance(key, str) else key] = redact_obj(value)
        return out
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v) for v in obj]
    if isinstance(obj, str):
        return redact(obj)
    return obj


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """A short, escaped quote of ``value`` for an error message, costing no more for 10 MB than for 10 bytes.

    Text and bytes: ``repr`` of at most ``limit`` characters (bytes decoded as UTF-8 with replacement),
    credentials redacted, ``… (N chars)`` / ``… (N bytes)`` when cut. Other values (a client's list or
    object): a bounded ``reprlib`` rendering, cut to ``limit`` characters with ``...``.

    Args:
        value: any value.
        limit: characters of the value kept.
    Returns:
        The quoted excerpt, e.g. ``'abc\\n…' (10000 chars)``.
    """
    if isinstance(value, (bytes, bytearray)):
        text, total, unit = bytes(value[: limit * 4]).decode("utf-8", errors="replace"), len(value), "bytes"
    elif isinstance(value, str):
        text, total, unit = value, len(value), "chars"
    else:
        try:
            text = redact(_repr(limit).repr(value))
        except Exception:  # a value whose repr fails: its type is enough
            text = f"<{type(value).__name__}>"
        return text if len(text) <= limit else text[: limit - 3] + "..."
    quoted = repr(redact(text[:limit]))
    return f"{quoted}… ({total} {unit})" if len(text) > limit or total > limit else quoted


def names(values: Iterable[Any], limit: int = 10, chars: int = 40) -> str:
    """A bounded list of names (columns, features, keys) for a message: at most ``limit``, each an excerpt.

    Args:
        values: the names.
        limit: most names shown.
        chars: characters kept of each name.
    Returns:
        ``['a', 'b', … 12 more]``.
    """
    values = list(values)
    shown = ", ".join(excerpt(name, chars) for name in values[:limit])
    return f"[{shown}{f', … {len(values) - limit} more' if len(values) > limit else ''}]"


def _repr(limit: int) -> reprlib.Repr:
    bounded = reprlib.Repr()  # (keyword arguments only from Python 3.12)
    bounded.maxlevel, bounded.maxstring, bounded.maxlong, bounded.maxother = 2, limit, limit, limit
    bounded.maxtuple = bounded.maxlist = bounded.maxarray = bounded.maxdict = bounded.maxset = 4
    bounded.maxfrozenset = bounded.maxdeque = 4
    return bounded
