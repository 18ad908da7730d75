"""Exceptions every app shares; teams is the bottom app, so any app may import them."""

from __future__ import annotations


class ActionRefused(Exception):  # noqa: N818 - reads as what happened
    """An action the object's state does not allow (stopping a finished job). The API answers 409 with the
    message as its detail; pages show the message."""
