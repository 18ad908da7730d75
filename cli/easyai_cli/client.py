"""The portal over HTTP: one session, the token header, and every failure turned into a one-line message."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import requests

from easyai_cli import __version__

CONNECT_TIMEOUT = 10.0
# Long enough for a slow dry run or a large listing; downloads reset it on every chunk.
READ_TIMEOUT = 120.0


class CLIError(Exception):
    """A problem to tell the user in plain lines, then exit with ``code`` (1: refused or failed, 2: usage)."""

    def __init__(self, *lines: str, code: int = 1):
        self.lines = [line for line in lines if line]
        self.code = code
        super().__init__("\n".join(self.lines))


class UnreachableError(CLIError):
    def __init__(self, url: str, reason: str):
        super().__init__(f"cannot reach the portal at {url}: {reason}")


class NotLoggedInError(CLIError):
    def __init__(self) -> None:
        super().__init__("not logged in: run `easyai login` or set EASYAI_TOKEN")


class RefusedError(CLIError):
    """The portal answered with an error status; ``body`` is its parsed JSON (or None)."""

    def __init__(self, status: int, lines: list[str], body: Any = None):
        self.status = status
        self.body = body
        super().__init__(*lines)


def error_lines(body: Any, path: str = "") -> list[str]:
    """DRF error bodies as lines: field errors as ``path: message``, general ones (detail, non_field_errors) bare."""
    if isinstance(body, Mapping):
        lines: list[str] = []
        for key, value in body.items():
            general = key in ("detail", "non_field_errors", "__all__") and not path
            lines.extend(error_lines(value, "" if general else f"{path}.{key}" if path else str(key)))
        return lines
    if isinstance(body, list):
        lines = []
        for index, item in enumerate(body):
            if isinstance(item, Mapping | list):
                lines.extend(error_lines(item, f"{path}.{index}" if path else str(index)))
            else:
                lines.extend(error_lines(item, path))
        return lines
    if body is None or body == "":
        return []
    return [f"{path}: {body}" if path else str(body)]


def _reason(exc: requests.RequestException) -> str:
    """The innermost cause, which names what went wrong (refused, name not known, timed out), without a chain."""
    cause: BaseException = exc
    seen = 0
    while (cause.__context__ or cause.__cause__) is not None and seen < 10:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
        seen += 1
    text = str(cause) or type(cause).__name__
    # urllib3 wraps messages as "<urllib3.connection.HTTPConnection object at 0x...>: Failed to ...": keep the words.
    if ">: " in text:
        text = text.split(">: ", 1)[1]
    if isinstance(exc, requests.Timeout):
        return f"timed out ({text})" if "timed out" not in text.lower() else text
    return text


class Portal:
    """One portal: its base URL and, once logged in, the token that every call carries."""

    def __init__(self, url: str, token: str = ""):
        self.url = url.rstrip("/")
        self.token = token
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"easyai-cli/{__version__}"
        self.session.headers["Accept"] = "application/json"
        if token:
            self.session.headers["Authorization"] = f"Token {token}"

    def api(self, path: str) -> str:
        return f"{self.url}/api/v1/{path.lstrip('/')}"

    def ws_url(self, path: str) -> str:
        base = self.url
        if base.startswith("https://"):
            base = "wss://" + base[len("https://") :]
        elif base.startswith("http://"):
            base = "ws://" + base[len("http://") :]
        return f"{base}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str = "",
        stream: bool = False,
        ok: tuple[int, ...] = (),
        timeout: float | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one API call; any error status becomes RefusedError with the portal's own words."""
        url = self.api(path)
        try:
            response = self.session.request(
                method, url, stream=stream, timeout=(CONNECT_TIMEOUT, timeout or READ_TIMEOUT), **kwargs
            )
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema):
            raise CLIError(f"{self.url} is not a portal URL: write it as http://host:port or https://host") from None
        except requests.RequestException as exc:
            raise UnreachableError(self.url, _reason(exc)) from None
        if response.status_code >= 400 and response.status_code not in ok:
            raise self._refused(response, what)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return self.decode(response)

    def decode(self, response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise CLIError(
                f"the portal at {self.url} answered {response.request.method} {response.url} with something that "
                "is not JSON: is this the address of an EasyAI portal?"
            ) from None

    def get(self, path: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.json("GET", path, params=params, **kwargs)

    def post(self, path: str, data: Any = None, **kwargs: Any) -> Any:
        if data is not None:
            kwargs["json"] = data
        return self.json("POST", path, **kwargs)

    def pages(
        self, path: str, params: Mapping[str, Any] | None = None, limit: int = 0, first: dict | None = None
    ) -> Iterator[dict]:
        """Every result of a paginated list, following ``next`` (at most ``limit`` when it is more than 0);
        ``first`` is the first page when the caller has already fetched it."""
        body = first if first is not None else self.get(path, params=params)
        count = 0
        while True:
            for item in body.get("results", []):
                yield item
                count += 1
                if limit and count >= limit:
                    return
            following = body.get("next")
            if not following:
                return
            # ``next`` is absolute and built from the Host the portal saw; keep our own base (it may sit behind a proxy).
            query = following.split("?", 1)[1] if "?" in following else ""
            body = self.get(f"{path.split('?', 1)[0]}?{query}")

    def _refused(self, response: requests.Response, what: str) -> RefusedError:
        body: Any = None
        if "json" in response.headers.get("Content-Type", ""):
            try:
                body = response.json()
            except ValueError:
                body = None
        lines = error_lines(body) if body is not None else []
        status = response.status_code
        if status == 401:
            lines = [
                "the portal refused the token"
                + (f" ({lines[0]})" if lines else "")
                + ": run `easyai login` again or check EASYAI_TOKEN"
            ]
        elif (
            status == 404
            and what
            and (not lines or lines == ["Not found."] or lines == ["No Job matches the given query."])
        ):
            lines = [f"{what}: not found (or you may not see it)"]
        elif not lines:
            text = response.text.strip() if "text/plain" in response.headers.get("Content-Type", "") else ""
            lines = [text[:500] if text else f"the portal answered {status} {response.reason or ''}".rstrip()]
        return RefusedError(status, lines, body)


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False)
