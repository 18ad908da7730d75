"""A small web app a job serves on its named port, for the endpoint proxy's tests (run as a job's command).

GET  /echo      the request line and headers it received, as JSON
POST /count     reads the body as it streams and answers its length
GET  /slow      a first chunk now, a second one after a pause (chunked)
GET  /go        a redirect to an absolute URL of this server's own address, and cookies
GET  …/api/status  200, as a started Jupyter Server answers the portal's readiness check
GET  /page      an HTML page whose script shows what it can see (document.cookie), as a task's app would
GET  /ws        a websocket that echoes text frames
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _json(self, status: int, body: dict, extra: list[tuple[str, str]] = ()) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _socket(self) -> None:
        accept = hashlib.sha1(self.headers["Sec-WebSocket-Key"].encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", base64.b64encode(accept.digest()).decode())
        self.end_headers()
        self.wfile.flush()
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = struct.unpack("!H", self.rfile.read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
            if opcode == 0x8:  # close: answer it and end
                self.wfile.write(b"\x88\x02\x03\xe8")
                self.wfile.flush()
                return
            if opcode == 0x1 and length < 126:
                self.wfile.write(bytes([0x81, length]) + data)
                self.wfile.flush()

    def do_GET(self) -> None:
        if self.path.endswith("/ws") and self.headers.get("Upgrade", "").lower() == "websocket":
            self._socket()
            self.close_connection = True
        elif self.path.endswith("/page"):
            page = (
                b"<!doctype html><html><head><title>task page</title></head><body><pre id='cookies'></pre>"
                b"<script>document.getElementById('cookies').textContent = 'cookies:' + document.cookie;</script>"
                b"</body></html>"
            )
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
        elif self.path.startswith("/endpoints/") and "/echo" in self.path:
            self._json(200, {"path": self.path, "headers": [[k, v] for k, v in self.headers.items()]})
        elif self.path.endswith("/api/status"):
            self._json(200, {"started": "", "last_activity": "", "kernels": 0, "connections": 0})
        elif self.path.endswith("/slow"):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"first\n", b"second\n"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
                time.sleep(1.5)
            self.wfile.write(b"0\r\n\r\n")
        elif self.path.endswith("/go"):
            host = f"127.0.0.1:{os.environ['EASYAI_PORT_WEB']}"
            self._json(
                302,
                {},
                [
                    ("Location", f"http://{host}{self.path[: -len('go')]}echo"),
                    ("Set-Cookie", "sessionid=stolen; Path=/"),
                    ("Set-Cookie", "app=1; Path=/; Domain=example.com; HttpOnly"),
                ],
            )
        else:
            self._json(404, {"path": self.path})

    def do_POST(self) -> None:
        total = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                total += len(self.rfile.read(size))
                self.rfile.readline()
        else:
            remaining = int(self.headers.get("Content-Length", "0"))
            while remaining:
                chunk = self.rfile.read(min(remaining, 1 << 16))
                total += len(chunk)
                remaining -= len(chunk)
        self._json(200, {"received": total})

    def log_message(self, format: str, *args) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["EASYAI_PORT_WEB"])), Handler).serve_forever()
