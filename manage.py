#!/usr/bin/env python
"""Django's command-line utility for EasyAI."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "easyai_site.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    from easyai_site.prepare import prepare

    try:
        prepare()  # var/ and the generated secret key, before the settings read them
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A setting that cannot work stops the start with one line that says what to change, not a traceback.
        sys.exit(f"easyai: {exc}")


if __name__ == "__main__":
    main()
