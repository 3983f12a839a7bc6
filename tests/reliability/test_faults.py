"""The fault matrix: every fault a provider or the network produces, for every provider.

Each test runs over real loopback HTTP against FakeLLMServer and checks the
same contract: the chunks that arrived before the fault are delivered, then
the right typed error is raised (or the stream ends cleanly), then the stream
reads as closed. The autouse leak check then proves the socket was released
and no ``litestream-*`` thread is left.
"""

from __future__ import annotations

import pytest
from _harness import (
    PROVIDERS,
    assert_finished,
    closed_port,
    consume,
    event_boundaries,
    framing,
    mid_stream_boundary,
    open_stream,
    replay_pieces,
    transcript,
    transcripts,
)

from litestream import errors

WORDS = ["alpha", " beta", " gamma", " delta", " epsilon", " zeta"]
TEXT = "".join(WORDS)

# ---------------------------------------------------------------------------
# No answer at all
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_connection_refused_raises_stream_connection_error(provider):
    stream = open_stream(provider, f"http://127.0.0.1:{closed_port()}")
    outcome = consume(stream)
    assert outcome.chunks == []
    assert isinstance(outcome.error, errors.StreamConnectionError)
    assert outcome.error.retryable
    assert outcome.error.provider == provider
    assert_finished(stream)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_server_that_never_answers_raises_first_chunk_timeout(provider, server):
    # The request is read but no status line ever comes: connecting worked, so
    # this is the first-chunk deadline, not ConnectTimeout.
    server.script(no_response=True)
    stream = open_stream(provider, server.api_base(provider), first_chunk_timeout=0.3)
    outcome = consume(stream)
    assert outcome.chunks == []
    assert isinstance(outcome.error, errors.FirstChunkTimeout)
    assert isinstance(outcome.error, TimeoutError)
    assert_finished(stream)
    assert server.wait_for_disconnect(5.0)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_headers_then_nothing_raises_first_chunk_timeout(provider, server):
    # stall_after=0: the headers and the provider's preamble (role chunk,
    # message_start, ping...) come, but never a piece of content.
    server.script(text=TEXT, chunks=WORDS, stall_after=0, keepalive_interval=0.05)
    stream = open_stream(provider, server.api_base(provider), first_chunk_timeout=0.4)
    outcome = consume(stream)
    assert outcome.content == ""
    assert isinstance(outcome.error, errors.FirstChunkTimeout)
    assert_finished(stream)
    assert server.wait_for_disconnect(5.0)


# ---------------------------------------------------------------------------
# Stalls: keepalives and pings are not content
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stall_with_keepalives_raises_idle_timeout_after_the_chunks(provider, server):
    server.script(text=TEXT, chunks=WORDS, stall_after=3, keepalive_interval=0.05)
    stream = open_stream(provider, server.api_base(provider), idle_timeout=0.3)
    outcome = consume(stream)
    assert outcome.content == "".join(WORDS[:3])
    assert isinstance(outcome.error, errors.IdleTimeout)
    assert outcome.error.provider == provider
    assert_finished(stream)
    assert server.wait_for_disconnect(5.0)


# ---------------------------------------------------------------------------
# Connections cut
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("where", ["between_events", "mid_event"])
def test_cut_connection_raises_after_the_chunks_before(provider, where, server):
    body = transcript(provider)
    boundary = mid_stream_boundary(provider, body)
    cut = boundary if where == "between_events" else boundary + 7
    expected = replay_pieces(provider, [body[:boundary]], finish=False)
    server.replay(body, cut_after_bytes=cut)
    stream = open_stream(provider, server.api_base(provider))
    outcome = consume(stream)
    assert outcome.content == expected.content
    assert len(outcome.chunks) == len(expected.chunks)
    assert isinstance(outcome.error, errors.StreamConnectionError)
    assert outcome.error.retryable
    assert_finished(stream)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_clean_eof_before_the_finish_raises_stream_connection_error(provider, server):
    # The body ends properly (chunked terminator) but in the middle of the answer.
    body = transcript(provider)
    boundary = mid_stream_boundary(provider, body)
    expected = replay_pieces(provider, [body[:boundary]], finish=False)
    server.replay(body[:boundary])
    stream = open_stream(provider, server.api_base(provider))
    outcome = consume(stream)
    assert outcome.content == expected.content
    assert outcome.finish_reasons == []
    assert isinstance(outcome.error, errors.StreamConnectionError)
    assert_finished(stream)


@pytest.mark.parametrize("provider", [name for name in PROVIDERS if name != "ollama"])
def test_missing_terminator_after_a_finish_reason_ends_cleanly(provider, server):
    # Gemini has no terminator at all: its last event carries the finish reason.
    server.script(text=TEXT, chunks=WORDS, omit_done=True)
    stream = open_stream(provider, server.api_base(provider))
    outcome = consume(stream)
    assert outcome.error is None
    assert outcome.content == TEXT
    assert outcome.finish_reasons == ["stop"]
    assert_finished(stream)


def test_missing_ollama_done_line_is_a_cut_stream(server):
    # Ollama's finish reason rides on the `done` line itself: without it no
    # finish reason came, so the stream was cut short.
    server.script(text=TEXT, chunks=WORDS, omit_done=True)
    stream = open_stream("ollama", server.api_base("ollama"))
    outcome = consume(stream)
    assert outcome.content == TEXT
    assert outcome.finish_reasons == []
    assert isinstance(outcome.error, errors.StreamConnectionError)
    assert_finished(stream)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_events_after_the_terminator_are_ignored(provider, server):
    server.script(text=TEXT, chunks=WORDS, events_after_done=True)
    stream = open_stream(provider, server.api_base(provider))
    outcome = consume(stream)
    assert outcome.error is None
    assert outcome.content == TEXT
    assert "AFTER-DONE" not in outcome.content
    assert outcome.finish_reasons == ["stop"]
    assert_finished(stream)


# ---------------------------------------------------------------------------
# Malformed data
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_byte_order_mark_at_the_start_of_the_body_is_dropped(provider, server):
    body = transcript(provider)
    expected = replay_pieces(provider, [body])
    server.replay(b"\xef\xbb\xbf" + body, piece_size=2)  # the mark split across reads, too
    stream = open_stream(provider, server.api_base(provider))
    outcome = consume(stream)
    assert outcome.error is None
    assert outcome.content == expected.content
    assert outcome.finish_reasons == expected.finish_reasons
    assert_finished(stream)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_truncated_json_raises_protocol_error_after_the_chunks(provider, server):
    server.script(text=TEXT, chunks=WORDS, malformed_after=2)
    stream = open_stream(provider, server.api_base(provider))
    outcome = consume(stream)
    assert outcome.content == "".join(WORDS[:2])
    assert isinstance(outcome.error, errors.ProtocolError)
    assert outcome.error.provider == provider
    assert_finished(stream)


def _insert_after_content(provider: str, event: bytes) -> tuple[bytes, str]:
    """The provider's transcript with ``event`` placed mid-stream; also the content before it."""
    body = transcript(provider)
    boundary = mid_stream_boundary(provider, body)
    if b"\r\n" in body:
        event = event.replace(b"\n", b"\r\n")
    before = replay_pieces(provider, [body[:boundary]], finish=False).content
    return body[:boundary] + event + body[boundary:], before


_NOT_JSON = {"sse": b"data: this is not JSON at all\n\n", "ndjson": b"this is not JSON at all\n"}
_BAD_UTF8 = {"sse": b'data: {"x": "\xff\xfe\xc3("}\n\n', "ndjson": b'{"x": "\xff\xfe\xc3("}\n'}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_non_json_data_line_raises_protocol_error(provider, server):
    body, before = _insert_after_content(provider, _NOT_JSON[framing(provider)])
    server.replay(body)
    stream = open_stream(provider, server.api_base(provider))
    outcome = consume(stream)
    assert outcome.content == before
    assert isinstance(outcome.error, errors.ProtocolError)
    assert_finished(stream)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_invalid_utf8_raises_protocol_error(provider, server):
    body, before = _insert_after_content(provider, _BAD_UTF8[framing(provider)])
    server.replay(body)
    stream = open_stream(provider, server.api_base(provider))
    outcome = consume(stream)
    assert outcome.content == before
    assert isinstance(outcome.error, errors.ProtocolError)
    assert "UTF-8" in outcome.error.message
    assert_finished(stream)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_oversized_event_raises_protocol_error_at_the_configured_bound(provider, server):
    # A 10 MB line against a 256 KiB bound (the RSS check with the default
    # 4 MiB bound is in test_resources.py).
    line = b"data: " if framing(provider) == "sse" else b""
    body, before = _insert_after_content(provider, line + b"x" * (10 * 1024 * 1024) + b"\n\n")
    server.replay(body)
    stream = open_stream(provider, server.api_base(provider), max_event_size=256 * 1024)
    outcome = consume(stream)
    assert outcome.content == before
    assert isinstance(outcome.error, errors.ProtocolError)
    assert "maximum event size" in outcome.error.message
    assert_finished(stream)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_200_that_is_not_an_event_stream_raises_protocol_error(provider, server):
    server.script(not_event_stream=True)
    stream = open_stream(provider, server.api_base(provider))
    outcome = consume(stream)
    assert outcome.chunks == []
    assert isinstance(outcome.error, errors.ProtocolError)
    assert "text/html" in outcome.error.message
    assert_finished(stream)


# ---------------------------------------------------------------------------
# Errors from the provider
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_inband_error_after_content_delivers_content_then_the_error(provider, server):
    server.script(text=TEXT, chunks=WORDS, inband_error_after=2)
    stream = open_stream(provider, server.api_base(provider))
    outcome = consume(stream)
    assert outcome.content == "".join(WORDS[:2])
    assert isinstance(outcome.error, errors.ProviderError)
    assert outcome.error.retryable
    assert outcome.error.message
    assert outcome.error.provider == provider
    assert_finished(stream)


STATUS_ERRORS = {
    401: errors.AuthenticationError,
    403: errors.PermissionDeniedError,
    404: errors.ModelNotFoundError,
    413: errors.InvalidRequestError,
    429: errors.RateLimitError,
    500: errors.ProviderError,
    502: errors.ProviderError,
    503: errors.ProviderError,
    529: errors.ProviderError,
}

# The message in each provider's error body, as FakeLLMServer writes it.
_MESSAGES = {
    401: "Incorrect API key provided.",
    403: "You do not have access to this model.",
    404: "The model does not exist or you do not have access to it.",
    413: "Request exceeds the maximum allowed size.",
    429: "Rate limit reached. Please try again later.",
    500: "The server had an error while processing your request.",
    502: "Bad gateway.",
    503: "The service is temporarily overloaded.",
    529: "Overloaded",
}


def _expected_message(provider: str, status: int) -> str:
    if provider == "ollama" and status == 404:
        return 'model "llama3.2" not found'
    return _MESSAGES[status]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", sorted(STATUS_ERRORS))
def test_http_error_with_the_providers_body(provider, status, server):
    server.script(error_status=status, retry_after=7 if status == 429 else None)
    stream = open_stream(provider, server.api_base(provider))
    outcome = consume(stream)
    assert outcome.chunks == []
    assert type(outcome.error) is STATUS_ERRORS[status], errors.error_summary(outcome.error)
    assert outcome.error.status_code == status
    assert _expected_message(provider, status) in outcome.error.message
    assert outcome.error.provider == provider
    assert outcome.error.retryable == (status >= 429)
    if status == 429:
        assert outcome.error.retry_after == 7.0
    assert_finished(stream)


_HTML = (
    "<html><head><title>{status} Gateway trouble</title></head>"
    "<body><h1>Upstream said {status}</h1><p>Try again soon.</p></body></html>"
)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", sorted(STATUS_ERRORS))
def test_http_error_with_an_html_body(provider, status, server):
    server.script(error_status=status, error_body=_HTML.format(status=status))
    stream = open_stream(provider, server.api_base(provider))
    outcome = consume(stream)
    assert outcome.chunks == []
    # A 404 page that says nothing of the model is a path not found, not a missing model.
    expected = errors.NotFoundError if status == 404 else STATUS_ERRORS[status]
    assert type(outcome.error) is expected or (
        status != 404 and isinstance(outcome.error, expected)), errors.error_summary(outcome.error)
    assert outcome.error.status_code == status
    assert f"Upstream said {status}" in outcome.error.message
    if status == 404:
        assert "nothing at /" in outcome.error.message
    assert "<" not in outcome.error.message
    assert_finished(stream)


def test_retry_after_as_an_http_date_becomes_seconds(server):
    server.script(error_status=429, retry_after="Wed, 21 Oct 2099 07:28:00 GMT")
    stream = open_stream("openai", server.api_base("openai"))
    outcome = consume(stream)
    assert isinstance(outcome.error, errors.RateLimitError)
    assert outcome.error.retry_after is not None and outcome.error.retry_after > 0
    assert_finished(stream)


# ---------------------------------------------------------------------------
# The harness itself
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_transcripts_have_mid_stream_boundaries(provider):
    body = transcript(provider)
    assert len(event_boundaries(provider, body)) >= 3
    assert mid_stream_boundary(provider, body) < len(body)


# ---------------------------------------------------------------------------
# Framing over real HTTP: one byte per HTTP chunk, reused connections
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", transcripts(), ids=lambda case: "/".join(case))
def test_transcript_sent_one_byte_per_http_chunk_gives_the_same_chunks(case, server):
    provider, name = case
    body = transcript(provider, name)
    expected = replay_pieces(provider, [body])
    server.replay(body, piece_size=1)
    stream = open_stream(provider, server.api_base(provider))
    outcome = consume(stream)
    assert outcome.content == expected.content
    assert outcome.finish_reasons == expected.finish_reasons
    assert type(outcome.error) is type(expected.error)
    assert len(outcome.chunks) == len(expected.chunks)
    assert_finished(stream)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_connection_reused_after_extra_events_serves_the_next_stream(provider, server):
    for _ in range(3):
        server.script(text=TEXT, chunks=WORDS, events_after_done=True)
    for _ in range(3):
        stream = open_stream(provider, server.api_base(provider))
        outcome = consume(stream)
        assert outcome.error is None
        assert outcome.content == TEXT
        assert_finished(stream)
