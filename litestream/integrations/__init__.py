"""Web framework integrations: streaming responses and an OpenAI-compatible proxy.

This package imports no web framework, and nothing of litestream until you
import one of its modules:

* :mod:`litestream.integrations.flask` -- ``sse_response(stream)`` and the
  proxy as Flask responses (imports Flask; ``pip install litestream[flask]``).
* :mod:`litestream.integrations.django` -- the same for Django
  (``pip install litestream[django]``).
* :mod:`litestream.integrations.proxy` -- what both share: the framework-neutral
  :class:`~litestream.integrations.proxy.ProxyReply`, HTTP statuses for
  errors, and :func:`~litestream.integrations.proxy.proxy_chat_completion`,
  an OpenAI ``POST /v1/chat/completions`` endpoint in front of any provider.
"""
