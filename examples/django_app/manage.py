#!/usr/bin/env python
"""Run the example Django chat site: ``python examples/django_app/manage.py runserver``.

Or serve it with waitress (streams each event as it comes)::

    cd examples/django_app && waitress-serve --port=8000 chat_site.wsgi:application
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
