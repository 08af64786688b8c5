#!/usr/bin/env python
"""Django's command-line utility for Soteria."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soteria_site.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A bad SOTERIA_* value: one line naming the variable, no traceback.
        sys.exit(f"soteria: configuration error: {exc}")


if __name__ == "__main__":
    main()
