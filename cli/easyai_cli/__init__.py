"""The ``easyai`` command-line client: talks to an EasyAI portal over its token API and websockets."""

__version__ = "0.1.0"
