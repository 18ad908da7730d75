"""Test support shared by every app's tests, loaded as a pytest plugin (``-p testing.plugin``).

- ``fakekube``: a fake Kubernetes API server over real HTTP, and jobs and clusters to put on it.
- ``asgi``: the project's ASGI application served by uvicorn in a thread, and the headless browser's settings.
- ``sockets``: a websocket client for the log and shell sockets.
- ``wait``: polling on a condition instead of sleeping for it.
- ``plugin``: the fixtures built on them, available to every test without an import.

Tests import helpers from here or from their app's ``conftest.py``, never from another test module.
"""
