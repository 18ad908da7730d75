"""`easyai login --sso`: a token without a password, through the portal's sign-in in a browser.

The CLI listens on 127.0.0.1 at a free port and opens the portal's page ``/accounts/cli/authorize/`` with that
port, a random state and a PKCE challenge (S256). The person signs in there as they do on the portal (their
company's single sign-on, or the directory's password form) and allows the CLI; the portal sends the browser
back to ``http://127.0.0.1:<port>/callback`` with a one-time code, which the CLI exchanges, with the verifier
that never left it, for an API token (``POST /api/v1/auth/cli-token/``).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import secrets
import threading
import webbrowser
from urllib.parse import parse_qs, urlencode, urlparse

from easyai_cli.client import CLIError, Portal, RefusedError

PAGE = (
    "<!DOCTYPE html><html><head><meta charset='utf-8'><title>easyai</title></head><body>"
    "<h1>{title}</h1><p>{text}</p></body></html>"
)


class _Answer:
    def __init__(self) -> None:
        self.params: dict[str, str] = {}
        self.received = threading.Event()


def _handler(answer: _Answer, state: str) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            params = {key: values[-1] for key, values in parse_qs(url.query).items()}
            if url.path != "/callback" or params.get("state") != state:
                self.send_error(404)
                return
            answer.params = params
            ok = "code" in params
            title = "Signed in" if ok else "Sign-in cancelled"
            text = "You can close this tab and go back to the terminal." if ok else "Nothing was changed."
            body = PAGE.format(title=title, text=text).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            answer.received.set()

        def log_message(self, format: str, *args) -> None:
            pass

    return Handler


def sso_token(url: str, *, name: str, timeout: float = 300.0, open_browser=webbrowser.open) -> dict:
    """Sign in through the browser; the portal's answer: {"token", "prefix", "username"}."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(24)
    answer = _Answer()
    server = http.server.HTTPServer(("127.0.0.1", 0), _handler(answer, state))
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="easyai-sso-callback", daemon=True)
    thread.start()
    try:
        query = urlencode(
            {"port": port, "state": state, "code_challenge": challenge, "code_challenge_method": "S256", "name": name}
        )
        page = f"{url}/accounts/cli/authorize/?{query}"
        print(f"Opening {page}\nSign in there and allow the easyai command; if no browser opens, open that address.")
        try:
            open_browser(page)
        except Exception:
            pass
        if not answer.received.wait(timeout):
            raise CLIError(f"no answer from the browser in {int(timeout)} s: run easyai login --sso again")
    finally:
        server.shutdown()
        server.server_close()
    if "code" not in answer.params:
        raise CLIError(f"sign-in refused in the browser: {answer.params.get('error', 'no code')}")
    try:
        body = Portal(url).post(
            "auth/cli-token/", {"code": answer.params["code"], "code_verifier": verifier, "name": name}
        )
    except RefusedError as exc:
        raise CLIError(*(f"login refused: {line}" for line in exc.lines)) from None
    if not isinstance(body, dict) or not body.get("token"):
        raise CLIError(f"the portal at {url} answered without a token: is this the address of an EasyAI portal?")
    return body
