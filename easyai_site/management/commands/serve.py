"""Serve the portal (daphne: pages, API, websockets), its worker and its scheduler as one process tree.

One daphne serves the portal and the endpoint origin (EASYAI_ENDPOINTS_URL), told apart by the Host header.
When the endpoint origin is on this machine under another port (the embedded default: the portal on
127.0.0.1:8000, endpoints on localhost:8001), daphne listens on that port too; in production a proxy in front
sends both hosts to the one port.

Ctrl-C (SIGINT) or SIGTERM stops all of them; if one dies, the others are stopped too.
"""

import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the portal at http://HOST:PORT with its background worker and scheduler."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("EASYAI_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("EASYAI_PORT", "8000")))
        parser.add_argument(
            "--endpoints-port",
            type=int,
            default=None,
            help="also listen here for the endpoint origin (default: EASYAI_ENDPOINTS_URL's port when its host is "
            "this machine's loopback name; 0: no second port)",
        )
        parser.add_argument("--no-worker", action="store_true", help="serve pages only")

    def handle(self, *args, **options):
        if not settings.DEBUG:
            # Without DEBUG, WhiteNoise serves /static/ from STATIC_ROOT only: bring it up to date first.
            call_command("collectstatic", interactive=False, verbosity=0)
            self.stdout.write(f"Static files collected into {settings.STATIC_ROOT}")
        python = sys.executable
        manage = os.path.join(os.getcwd(), "manage.py")
        web = [python, "-m", "daphne", "-b", options["host"], "-p", str(options["port"])]
        endpoints_port = options["endpoints_port"]
        if endpoints_port is None:
            endpoints_port = local_endpoints_port(settings.EASYAI_ENDPOINTS_URL)
        if endpoints_port and endpoints_port != options["port"]:
            from daphne.endpoints import build_endpoint_description_strings

            for endpoint in build_endpoint_description_strings(host=options["host"], port=endpoints_port):
                web += ["-e", endpoint]
        commands = {"web": [*web, "easyai_site.asgi:application"]}
        if not options["no_worker"]:
            commands["worker"] = [python, manage, "qcluster"]
            commands["scheduler"] = [python, manage, "scheduler"]
        children: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(signum=None, frame=None):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for name, argv in commands.items():
            children[name] = subprocess.Popen(argv)
        self.stdout.write(f"EasyAI is serving at http://{options['host']}:{options['port']}/ (Ctrl-C stops it)")
        listening = (
            f" (listening on port {endpoints_port} too)" if endpoints_port and endpoints_port != options["port"] else ""
        )
        self.stdout.write(
            f"Endpoints (notebooks, TensorBoard, task ports) at {settings.EASYAI_ENDPOINTS_URL}/{listening}"
        )
        try:
            while not stopping:
                for name, child in children.items():
                    if child.poll() is not None:
                        self.stderr.write(f"{name} exited with {child.returncode}; stopping the rest")
                        stopping = True
                time.sleep(0.5)
        finally:
            for child in children.values():
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            for child in children.values():
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def local_endpoints_port(url: str) -> int | None:
    """The port to listen on for the endpoint origin when it is this machine's (a loopback name), else None."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host.startswith("*."):
        host = host[2:]
    if host not in LOOPBACK_NAMES and not host.endswith(".localhost"):
        return None
    return parts.port or (443 if parts.scheme == "https" else 80)
