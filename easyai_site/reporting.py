"""What error reports (debug pages, error e-mails) may show: never a password, not even inside a URL.

Django's SafeExceptionReporterFilter hides settings and variables whose *names* look secret
(PASSWORD, TOKEN, KEY...). A connection string carries its password in its *value*:
``DATABASE_URL=mysql://easyai:hunter2@db/easyai``, ``REDIS_URL``, the channel layer's hosts, the
django-q2 broker, the cache's LOCATION, and the same strings in the environment (request.META under
runserver) and in local variables. This filter masks the password part of every such URL it shows.
"""

from __future__ import annotations

import re
from typing import Any

from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

# scheme://user:password@host  or  scheme://:password@host (Redis): the password is what lies
# between the first ':' after the user name and the last '@' before the host.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)(?P<password>[^\s/]*)(?P<tail>@)")
MASK = SafeExceptionReporterFilter.cleansed_substitute


def mask_url_passwords(text: str) -> str:
    """The text with the password of every URL in it replaced by the mask."""
    if "://" not in text or "@" not in text:
        return text
    return _URL_PASSWORD.sub(lambda match: f"{match['head']}{MASK}{match['tail']}", text)


def _mask(value: Any, depth: int = 0) -> Any:
    if depth > 10:
        return value
    if isinstance(value, str):
        return mask_url_passwords(value)
    if isinstance(value, bytes):
        masked = mask_url_passwords(value.decode("utf-8", "replace"))
        return masked.encode() if "://" in masked else value
    if isinstance(value, dict):
        return {key: _mask(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask(item, depth + 1) for item in value]
    if isinstance(value, tuple) and hasattr(value, "_replace") and "@" in str(getattr(value, "netloc", "")):
        # urllib's parsed URLs (ParseResult, SplitResult): the password sits in netloc, without the scheme.
        userinfo, _at, hostport = value.netloc.rpartition("@")
        if ":" in userinfo:
            return value._replace(netloc=f"{userinfo.split(':', 1)[0]}:{MASK}@{hostport}")
        return value
    if isinstance(value, tuple):
        return tuple(_mask(item, depth + 1) for item in value)
    return value


class _MaskedRepr:
    """Stands in for an object whose repr shows a URL with its password (a parsed URL, a client...)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _mask_variable(value: Any) -> Any:
    value = _mask(value)
    if isinstance(value, str | bytes | dict | list | tuple):
        return value
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ is the reporter's to show, as Django does
        return value
    masked = mask_url_passwords(text)
    return value if masked == text else _MaskedRepr(masked)


class ConnectionStringSafeFilter(SafeExceptionReporterFilter):
    """Django's filter, plus URL passwords masked in settings, request.META and frame variables."""

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        return _mask(super().cleanse_setting(key, value))

    def get_traceback_frame_variables(self, request, tb_frame) -> list[tuple[str, Any]]:
        variables = super().get_traceback_frame_variables(request, tb_frame)
        return [(name, _mask_variable(value)) for name, value in variables]


class ConnectionStringSafeReporter(ExceptionReporter):
    """Django's reporter, with URL passwords masked in the exception's message and the source lines shown too.

    (A driver's error may quote the URL it failed to reach; the filter above sees only variables and settings.)
    """

    def get_traceback_data(self) -> dict[str, Any]:
        data = super().get_traceback_data()
        if isinstance(data.get("exception_value"), str):
            data["exception_value"] = mask_url_passwords(data["exception_value"])
        for frame in data.get("frames", []):
            for name in ("pre_context", "post_context"):
                if frame.get(name):
                    frame[name] = [mask_url_passwords(line) for line in frame[name]]
            if isinstance(frame.get("context_line"), str):
                frame["context_line"] = mask_url_passwords(frame["context_line"])
            if frame.get("exc_cause") is not None:
                frame["exc_cause"] = _MaskedRepr(mask_url_passwords(str(frame["exc_cause"])))
        return data
