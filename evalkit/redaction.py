"""Keeping secrets out of everything evalkit writes or prints.

One function, :func:`redact`, is applied by every writer of params, tags, failure reasons, error
texts, reports and CLI output. It removes what can be recognised in any text:

- the password of a URL's userinfo (``http://user:key@host`` → ``http://user:***@host``);
- the value of query parameters named like credentials (``?api_key=...``, ``&token=...``);
- bearer tokens, ``sk-``-style API keys and evalkit server tokens (``ek_...``);
- any value the caller knows to be secret (a model's API key, its extra headers' values).

Secrets the caller knows are passed explicitly (``redact(text, secrets=...)``): evalkit keeps no
process-wide list of them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Names of query parameters and mapping keys whose values are credentials.
SECRET_NAME = re.compile(
    r"(?:^|[-_.])(?:api[-_]?key|apikey|key|token|secret|password|passwd|pwd|auth|authorization|bearer|"
    r"credentials?|signature|sig|session[-_]?id)$",
    re.IGNORECASE,
)
# Values shaped like API keys: OpenAI-style sk-..., Anthropic-style, GitHub, AWS access key ids,
# evalkit server tokens (ek_ and 43 URL-safe characters: evalkit/server/auth/tokens.py).
# (OpenAI echoes refused keys half-masked, "sk-live-S*****7890": the stars are part of the shape.)
_KEY_SHAPED = re.compile(
    r"\b(sk-[A-Za-z0-9_\-*]{6,}|gh[pousr]_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|ek_[A-Za-z0-9_\-]{40,})"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}")
# scheme://user:password@ inside any text (a URL in an error message, a suite file, a log line).
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^\s/:@]*):(?P<password>[^\s/@]+)@")
# name=value pairs in URLs and in free text (``?api_key=abc``, ``token=abc``).
_QUERY_PAIR = re.compile(r"(?P<name>[A-Za-z0-9_\-]+)=(?P<value>[^&\s#'\"]+)")
MIN_SECRET_LENGTH = 4  # shorter "secrets" would mask ordinary words


def is_secret_name(name: str) -> bool:
    """Whether a key, header or query parameter named ``name`` holds a credential (any case)."""
    return bool(SECRET_NAME.search(name))


def looks_like_key(value: str) -> bool:
    """Whether ``value`` is shaped like an API key or a bearer credential."""
    return bool(_KEY_SHAPED.search(value) or _BEARER.search(value))


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every recognisable credential and every value in ``secrets`` replaced by ``***``."""
    if not text:
        return text
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _QUERY_PAIR.sub(
        lambda m: f"{m['name']}={MASK}" if is_secret_name(m["name"]) and m["value"] != MASK else m[0], text
    )
    text = _BEARER.sub(lambda m: f"{m[1]} {MASK}", text)
    return _KEY_SHAPED.sub(_mask_key, text)


def _mask_key(match: re.Match[str]) -> str:
    # Keep the kind of key visible ("sk-***", "ek_***"), so a reader knows what was there.
    for prefix in ("sk-", "ek_"):
        if match[0].startswith(prefix):
            return prefix + MASK
    return MASK


def redact_url(url: str) -> str:
    """A URL safe to log and compare: no userinfo password, credential query values masked.

    The result keeps everything that identifies the endpoint (scheme, host, port, path, other
    query parameters), so two URLs that differ only in their secrets redact to the same text.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = [(k, MASK if is_secret_name(k) else v) for k, v in parse_qsl(query, keep_blank_values=True)]
        query = urlencode(pairs, safe=":/*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_secrets(url: str | None) -> list[str]:
    """The secret parts of a URL (its userinfo password and credential query values), for
    ``redact(..., secrets=...)`` of texts that may quote them in another form."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = [parts.password] if parts.password else []
    found += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if is_secret_name(k) and v]
    return [s for s in found if s]


# The loggers of the HTTP stack under the openai client that quote URLs and request options.
HTTP_LOGGERS = ("httpx", "openai", "openai._base_client")
_FORMATTER = logging.Formatter()


class RedactingFilter(logging.Filter):
    """A logging filter that rewrites each record's message through :func:`redact`, with the
    secrets of one model. A model installs it on ``HTTP_LOGGERS`` while it is open, so a user who
    turns on DEBUG logging sees its requests without its credentials."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            # A traceback quotes the request's URL: format it here, redacted; handlers reuse exc_text.
            record.exc_text = redact(_FORMATTER.formatException(record.exc_info), self.secrets)
        return True

    def install(self) -> RedactingFilter:
        for name in HTTP_LOGGERS:
            logging.getLogger(name).addFilter(self)
        return self

    def remove(self) -> None:
        for name in HTTP_LOGGERS:
            logging.getLogger(name).removeFilter(self)
