"""``python -m litestream``: the same as the ``litestream`` command."""

from __future__ import annotations

import sys

from litestream.cli import main

if __name__ == "__main__":
    sys.exit(main())
