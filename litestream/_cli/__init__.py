"""The ``litestream`` command (private: its only entry point is :func:`command.main`).

:mod:`~litestream._cli.command` parses the command line and runs ``chat``,
``demo`` and ``providers``; :mod:`~litestream._cli.chat` streams a chat;
:mod:`~litestream._cli.demo` is the offline tour; :mod:`~litestream._cli.meter`
measures a stream for the status lines. Nothing in the library imports this
package.
"""
