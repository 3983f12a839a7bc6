"""``python -m litestream``: the same as the ``litestream`` command."""

from __future__ import annotations

import sys

from litestream._cli.command import main

if __name__ == "__main__":
    sys.exit(main())
