"""Sphinx configuration for the litestream documentation.

Build the site (warnings are errors)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

Run every ``>>>`` example of the guide (each page starts its own FakeLLMServer)::

    sphinx-build -W --keep-going -b doctest docs docs/_build/doctest
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))

import litestream  # noqa: E402

project = "litestream"
author = "the litestream authors"
copyright = "2026, the litestream authors"
release = version = litestream.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
root_doc = "index"

html_theme = "furo"
html_title = f"litestream {release}"

myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# Each guide page shows its own setup: it starts a fake server and points the
# environment at it in a visible example (nothing is hidden here). The API
# pages' docstring examples use their module's names unqualified, as the code
# around a docstring would; these imports give them those names.
doctest_global_setup = """
from litestream.router import *
from litestream.streaming import *
from litestream.channels import *
from litestream.types import *
from litestream.errors import *
from litestream.tokens import *
from litestream.core import *
"""

# Deployments registered on the default router by one page must not leak into the next.
doctest_global_cleanup = """
import litestream
litestream.router.clear()
"""


def _public_bases(app: object, name: str, cls: type, options: object, bases: list) -> None:
    """Show a class's public ancestry: a private base (``Router``'s ``_Runner``) is a detail."""

    def public(base: type) -> list:
        if not getattr(base, "__name__", "").startswith("_"):
            return [base]
        return [ancestor for parent in base.__bases__ for ancestor in public(parent)]

    bases[:] = [ancestor for base in bases for ancestor in public(base)]


def setup(app: object) -> None:
    """Register the hook that hides private base classes."""
    app.connect("autodoc-process-bases", _public_bases)  # type: ignore[attr-defined]
