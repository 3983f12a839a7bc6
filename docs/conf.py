"""Sphinx configuration for the litestream documentation.

Build the site (warnings are errors)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

Run every ``>>>`` example of the guide against a FakeLLMServer::

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

# Every page with doctests talks to its own FakeLLMServer: the provider keys and
# base URLs point at it, so the examples read like real code. Each example
# scripts the reply it gets in a hidden block just before it.
doctest_global_setup = """
import os as _os

import litestream as ls
from litestream.testing import FakeLLMServer

# The API pages' docstring examples use their module's names unqualified.
from litestream.router import *
from litestream.streaming import *
from litestream.channels import *
from litestream.types import *
from litestream.errors import *
from litestream.tokens import *
from litestream.cli import StreamMeter
from litestream.core import *

server = FakeLLMServer().start()
_saved_environ = dict(_os.environ)
for _provider, _variable in [("openai", "OPENAI"), ("anthropic", "ANTHROPIC"),
                             ("gemini", "GEMINI"), ("mistral", "MISTRAL"),
                             ("openrouter", "OPENROUTER")]:
    _os.environ[_variable + "_API_KEY"] = "sk-docs-" + _provider
    _os.environ[_variable + "_BASE_URL"] = server.api_base(_provider)
_os.environ["OLLAMA_HOST"] = server.api_base("ollama")
"""

doctest_global_cleanup = """
ls.router.clear()
server.stop()
_os.environ.clear()
_os.environ.update(_saved_environ)
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
