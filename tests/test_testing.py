"""FakeLLMServer: paths, wire shapes, replay, faults, connection tracking, and the official SDKs."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from litestream.testing import FakeLLMServer

FIXTURES = Path(__file__).parent / "fixtures" / "streams"
MESSAGES = [{"role": "user", "content": "Hi"}]

# provider -> (path under server.url, JSON body of a streaming request)
STREAM_REQUESTS = {
    "openai": ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MESSAGES,
                                        "stream": True}),
    "mistral": ("/v1/chat/completions", {"model": "mistral-small-latest", "messages": MESSAGES,
                                         "stream": True}),
    "openrouter": ("/api/v1/chat/completions", {"model": "openai/gpt-4o", "messages": MESSAGES,
                                                "stream": True}),
    "anthropic": ("/v1/messages", {"model": "claude-3-5-haiku-latest", "max_tokens": 50,
                                   "messages": MESSAGES, "stream": True}),
    "gemini": ("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
               {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}),
    "ollama": ("/api/chat", {"model": "llama3.2", "messages": MESSAGES, "stream": True}),
    "openai_responses": ("/v1/responses", {"model": "gpt-5-mini", "input": "Hi",
                                           "stream": True}),
}


# ---------------------------------------------------------------------------
# Helpers: read what is on the wire without any litestream code
# ---------------------------------------------------------------------------


def parse_events(provider: str, body: bytes) -> list[tuple[str | None, object]]:
    """Split a stream body into (event name, parsed data) pairs; comments are skipped."""
    text = body.decode("utf-8")
    if provider == "ollama":
        return [(None, json.loads(line)) for line in text.splitlines() if line]
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        if data:
            joined = "\n".join(data)
            events.append((name, joined if joined == "[DONE]" else json.loads(joined)))
    return events


def content_of(provider: str, events: list[tuple[str | None, object]]) -> str:
    """Join the answer text out of parsed events, the way each provider's client would."""
    pieces = []
    for name, data in events:
        if provider in ("openai", "mistral", "openrouter"):
            if isinstance(data, dict) and data.get("choices"):
                pieces.append(data["choices"][0]["delta"].get("content") or "")
        elif provider == "anthropic":
            if name == "content_block_delta" and data["delta"]["type"] == "text_delta":
                pieces.append(data["delta"]["text"])
        elif provider == "gemini":
            for part in data["candidates"][0]["content"]["parts"]:
                if not part.get("thought"):
                    pieces.append(part.get("text", ""))
        elif provider == "openai_responses":
            if name == "response.output_text.delta":
                pieces.append(data["delta"])
        else:
            pieces.append(data["message"]["content"])
    return "".join(pieces)


def post(server: FakeLLMServer, provider: str, **changes: object) -> requests.Response:
    path, body = STREAM_REQUESTS[provider]
    with requests.Session() as session:
        return session.post(server.url + path, json={**body, **changes}, timeout=10)


def raw_request(server: FakeLLMServer, provider: str) -> socket.socket:
    """Send a streaming request on a bare socket (Connection: close) and return the socket."""
    path, body = STREAM_REQUESTS[provider]
    payload = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode() + payload)
    return sock


def read_until(sock: socket.socket, marker: bytes, count: int = 1) -> bytes:
    """Read until ``marker`` has been seen ``count`` times (or EOF)."""
    data = b""
    while data.count(marker) < count:
        more = sock.recv(65536)
        if not more:
            break
        data += more
    return data


def read_to_eof(sock: socket.socket) -> bytes:
    data = b""
    while True:
        more = sock.recv(65536)
        if not more:
            return data
        data += more


def dechunk(raw: bytes) -> tuple[bytes, bytes, list[int], bool]:
    """Split a raw chunked response into (head, payload, chunk sizes, whether it ended properly)."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    payload, sizes = b"", []
    while rest:
        line, _, rest = rest.partition(b"\r\n")
        size = int(line, 16)
        if size == 0:
            return head, payload, sizes, True
        sizes.append(size)
        payload += rest[:size]
        rest = rest[size + 2:]
    return head, payload, sizes, False


def fakellm_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("fakellm")]


@pytest.fixture
def server():
    with FakeLLMServer() as fake:
        yield fake


# ---------------------------------------------------------------------------
# Lifecycle, addresses, routing
# ---------------------------------------------------------------------------


def test_context_manager_registers_and_unregisters_server():
    with FakeLLMServer() as fake:
        assert fake in FakeLLMServer.running()
        assert fake.url == f"http://127.0.0.1:{fake.port}"
        assert fakellm_threads()
    assert fake not in FakeLLMServer.running()
    assert fakellm_threads() == []


def test_api_base_points_each_provider_at_its_real_path(server):
    assert server.api_base("openai") == server.url + "/v1"
    assert server.api_base("mistral") == server.url + "/v1"
    assert server.api_base("openai_compatible") == server.url + "/v1"
    assert server.api_base("openrouter") == server.url + "/api/v1"
    for name in ("anthropic", "gemini", "ollama"):
        assert server.api_base(name) == server.url
    with pytest.raises(ValueError):
        server.api_base("cohere")


@pytest.mark.parametrize("provider", sorted(STREAM_REQUESTS))
def test_each_provider_path_answers_the_default_reply(server, provider):
    response = post(server, provider)
    assert response.status_code == 200
    expected_type = "application/x-ndjson" if provider == "ollama" else "text/event-stream"
    assert response.headers["Content-Type"].startswith(expected_type)
    assert response.headers["Transfer-Encoding"] == "chunked"
    events = parse_events(provider, response.content)
    assert content_of(provider, events) == "Hello from FakeLLMServer!"
    assert server.last_request.provider == provider


def test_get_models_lists_a_model(server):
    with requests.Session() as session:
        listing = session.get(server.url + "/v1/models", timeout=10)
        missing = session.get(server.url + "/nowhere", timeout=10)
    assert listing.status_code == 200
    assert listing.json()["object"] == "list"
    assert listing.json()["data"][0]["id"]
    assert missing.status_code == 404


def test_requests_are_recorded_with_path_query_headers_and_json(server):
    path, body = STREAM_REQUESTS["gemini"]
    with requests.Session() as session:
        session.post(server.url + path, json=body, headers={"x-goog-api-key": "k1"}, timeout=10)
    recorded = server.last_request
    assert recorded.method == "POST"
    assert recorded.path == "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    assert recorded.query == {"alt": ["sse"]}
    assert recorded.headers["x-goog-api-key"] == "k1"
    assert recorded.json == body
    assert recorded.provider == "gemini"
    assert len(server.requests) == 1


def test_replies_are_served_in_fifo_order_then_the_default(server):
    server.script(text="first")
    server.script(text="second")
    assert server.pending == 2
    texts = [content_of("openai", parse_events("openai", post(server, "openai").content))
             for _ in range(3)]
    assert texts == ["first", "second", "Hello from FakeLLMServer!"]
    assert server.pending == 0


# ---------------------------------------------------------------------------
# Replay
# ---------------------------------------------------------------------------

TRANSCRIPTS = sorted(FIXTURES.glob("*/*.txt"))


@pytest.mark.parametrize("transcript", TRANSCRIPTS, ids=lambda p: f"{p.parent.name}/{p.stem}")
@pytest.mark.parametrize("piece_size", [None, 7])
def test_replay_serves_transcript_byte_for_byte(server, transcript, piece_size):
    provider = transcript.parent.name
    server.replay(transcript, piece_size=piece_size)
    response = post(server, provider)
    assert response.content == transcript.read_bytes()
    expected_type = "application/x-ndjson" if provider == "ollama" else "text/event-stream"
    assert response.headers["Content-Type"].startswith(expected_type)


def test_replay_in_pieces_writes_one_chunk_per_piece(server):
    body = (FIXTURES / "openai" / "plain_text.txt").read_bytes()
    server.replay(body, piece_size=10, headers={"x-fixture": "yes"})
    sock = raw_request(server, "openai")
    with sock:
        head, payload, sizes, complete = dechunk(read_to_eof(sock))
    assert complete
    assert payload == body
    assert sizes[:-1] == [10] * (len(sizes) - 1)
    assert b"x-fixture: yes" in head


def test_replay_with_status_and_content_type(server):
    server.replay(b'{"error": {"message": "nope"}}', status=503, content_type="application/json")
    response = post(server, "openai")
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"error": {"message": "nope"}}


# ---------------------------------------------------------------------------
# Scripted streams: the wire shapes
# ---------------------------------------------------------------------------

TOOL = {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_1"}


def test_openai_stream_has_role_chunk_deltas_tool_fragments_finish_usage_and_done(server):
    server.script(text="Hi there", chunks=["Hi", " there"], tool_calls=[TOOL],
                  usage={"prompt_tokens": 3, "completion_tokens": 4})
    events = parse_events("openai", post(server, "openai",
                                         stream_options={"include_usage": True}).content)
    chunks = [data for _, data in events]
    assert chunks[-1] == "[DONE]"
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks[:-1])
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:3]] == ["Hi", " there"]
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[3:-3]]
    assert calls[0] == {"index": 0, "id": "call_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}
    assert all(set(call) == {"index", "function"} for call in calls[1:])
    assert "".join(call["function"]["arguments"] for call in calls) == '{"city": "Paris"}'
    assert chunks[-3]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-2]["choices"] == []
    assert chunks[-2]["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_openai_stream_without_include_usage_sends_no_usage_chunk(server):
    events = parse_events("openai", post(server, "openai").content)
    assert all("usage" not in data for _, data in events[:-1])
    assert events[-2][1]["choices"][0]["finish_reason"] == "stop"


def test_mistral_model_gets_usage_on_the_finish_chunk(server):
    server.script(text="Bonjour", usage={"prompt_tokens": 7, "completion_tokens": 1})
    events = parse_events("mistral", post(server, "mistral").content)
    finish = events[-2][1]
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert finish["usage"] == {"prompt_tokens": 7, "total_tokens": 8, "completion_tokens": 1}
    assert events[-1][1] == "[DONE]"
    assert not finish["id"].startswith("chatcmpl-")


def test_openrouter_sends_processing_comments_then_usage(server):
    server.script(text="Hi", keepalives=2)
    body = post(server, "openrouter").content
    assert body.startswith(b": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\n")
    events = parse_events("openrouter", body)
    assert events[-2][1]["usage"]["completion_tokens"] == 1
    assert events[-1][1] == "[DONE]"


def test_anthropic_stream_follows_the_messages_event_grammar(server):
    server.script(text="Hi there", reasoning="Hmm", tool_calls=[TOOL],
                  usage={"prompt_tokens": 5, "completion_tokens": 9})
    events = parse_events("anthropic", post(server, "anthropic").content)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert all(data["type"] == name for name, data in events)
    assert events[0][1]["message"]["usage"]["input_tokens"] == 5
    starts = [data["content_block"]["type"] for name, data in events
              if name == "content_block_start"]
    assert starts == ["thinking", "text", "tool_use"]
    delta_types = {data["delta"]["type"] for name, data in events if name == "content_block_delta"}
    assert delta_types == {"thinking_delta", "signature_delta", "text_delta", "input_json_delta"}
    assert names.count("content_block_start") == names.count("content_block_stop") == 3
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert events[-2][1]["usage"] == {"output_tokens": 9}


def test_gemini_stream_is_crlf_framed_with_cumulative_usage_and_no_done(server):
    server.script(text="a b c", tool_calls=[TOOL], usage={"prompt_tokens": 4,
                                                          "completion_tokens": 8})
    body = post(server, "gemini").content
    assert body.startswith(b"data: {") and body.endswith(b"}\r\n\r\n")
    assert b"[DONE]" not in body
    events = [data for _, data in parse_events("gemini", body)]
    counts = [event["usageMetadata"]["candidatesTokenCount"] for event in events]
    assert counts == sorted(counts) and counts[-1] == 8
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert "finishReason" not in events[0]["candidates"][0]
    assert events[-1]["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}}]


def test_ollama_stream_is_ndjson_ending_with_a_done_line(server):
    server.script(text="Hi", finish_reason="length", usage={"prompt_tokens": 6,
                                                            "completion_tokens": 2})
    lines = [data for _, data in parse_events("ollama", post(server, "ollama").content)]
    assert [line["done"] for line in lines] == [False, True]
    assert lines[0]["message"] == {"role": "assistant", "content": "Hi"}
    assert lines[-1]["done_reason"] == "length"
    assert (lines[-1]["prompt_eval_count"], lines[-1]["eval_count"]) == (6, 2)


REASONING_FIELDS = {
    "openai": lambda data: data["choices"][0]["delta"].get("reasoning_content"),
    "openrouter": lambda data: data["choices"][0]["delta"].get("reasoning"),
    "gemini": lambda data: "".join(p["text"] for p in data["candidates"][0]["content"]["parts"]
                                   if p.get("thought")),
    "ollama": lambda data: data["message"].get("thinking"),
}


@pytest.mark.parametrize("provider", sorted(REASONING_FIELDS))
def test_reasoning_streams_before_the_text_in_the_provider_field(server, provider):
    server.script(text="Answer", reasoning="Think first")
    events = parse_events(provider, post(server, provider).content)
    field = REASONING_FIELDS[provider]
    reasoning = [field(data) for _, data in events
                 if isinstance(data, dict) and data.get("choices", True) and field(data)]
    assert "".join(reasoning) == "Think first"
    assert content_of(provider, events) == "Answer"


@pytest.mark.parametrize("provider,field", [
    ("openai", ("choices", 0, "message", "content")),
    ("anthropic", ("content", 0, "text")),
    ("gemini", ("candidates", 0, "content", "parts", 0, "text")),
    ("ollama", ("message", "content")),
])
def test_non_streaming_request_gets_a_whole_json_body(server, provider, field):
    server.script(text="whole answer")
    if provider == "gemini":
        with requests.Session() as session:
            response = session.post(
                server.url + "/v1beta/models/gemini-2.0-flash:generateContent",
                json=STREAM_REQUESTS["gemini"][1], timeout=10)
    else:
        response = post(server, provider, stream=False)
    assert response.headers["Content-Type"] == "application/json"
    value = response.json()
    for key in field:
        value = value[key]
    assert value == "whole answer"


# ---------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("provider,check", [
    ("openai", lambda body: body["error"]["type"] == "requests"),
    ("anthropic", lambda body: body["error"]["type"] == "rate_limit_error"),
    ("gemini", lambda body: body["error"]["status"] == "RESOURCE_EXHAUSTED"),
    ("ollama", lambda body: isinstance(body["error"], str)),
])
def test_error_status_sends_status_retry_after_and_provider_error_body(server, provider, check):
    server.script(error_status=429, retry_after=7)
    response = post(server, provider)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert check(response.json())


def test_error_body_can_be_an_html_page(server):
    server.script(error_status=502, error_body="<html><body>Bad Gateway</body></html>")
    response = post(server, "openai")
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text == "<html><body>Bad Gateway</body></html>"


@pytest.mark.parametrize("provider,is_error", [
    ("openai", lambda name, data: "error" in data and "choices" not in data),
    ("openrouter", lambda name, data: data["choices"][0]["finish_reason"] == "error"),
    ("anthropic", lambda name, data: name == "error"
        and data["error"]["type"] == "overloaded_error"),
    ("gemini", lambda name, data: data["error"]["status"] == "INTERNAL"),
    ("ollama", lambda name, data: set(data) == {"error"}),
])
def test_inband_error_ends_the_stream_after_n_chunks(server, provider, is_error):
    server.script(text="one two three", inband_error_after=2)
    events = parse_events(provider, post(server, provider).content)
    assert is_error(*events[-1])
    assert content_of(provider, events[:-1]) == "one two"


def test_malformed_after_inserts_a_non_json_data_line(server):
    server.script(text="one two", malformed_after=1)
    body = post(server, "openai").content
    bad = [block for block in body.split(b"\n\n") if block.startswith(b"data: {")
           and not _is_json(block[6:])]
    assert len(bad) == 1
    assert body.index(bad[0]) > body.index(b'"one"')
    assert body.endswith(b"data: [DONE]\n\n")


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def test_omit_done_and_events_after_done(server):
    server.script(text="x", omit_done=True)
    server.script(text="x", events_after_done=True)
    without_done = post(server, "anthropic").content
    after_done = parse_events("openai", post(server, "openai").content)
    assert b"message_stop" not in without_done
    assert after_done[-2][1] == "[DONE]"
    assert after_done[-1][1]["choices"][0]["delta"]["content"] == "AFTER-DONE"


def test_not_event_stream_answers_200_html(server):
    server.script(not_event_stream=True)
    response = post(server, "openai")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text.startswith("<html>")


def test_cut_after_bytes_closes_the_connection_mid_event(server):
    server.script(text="one two three four", cut_after_bytes=150)
    sock = raw_request(server, "openai")
    with sock:
        head, payload, _, complete = dechunk(read_to_eof(sock))
    assert head.startswith(b"HTTP/1.1 200")
    assert not complete
    assert len(payload) == 150
    assert server.disconnects == 0


def test_cut_after_bytes_breaks_a_requests_stream(server):
    server.script(text="one two three four", cut_after_bytes=100)
    path, body = STREAM_REQUESTS["openai"]
    with requests.Session() as session:
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            session.post(server.url + path, json=body, timeout=10)


def test_head_delay_holds_back_the_headers(server):
    server.script(head_delay=0.2)
    started = time.monotonic()
    response = post(server, "openai")
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.2


def test_delay_is_spent_before_each_chunk(server):
    server.script(text="a b c", delay=0.05)
    started = time.monotonic()
    post(server, "ollama")
    assert time.monotonic() - started >= 0.15


# ---------------------------------------------------------------------------
# Stalls, disconnects, idle, stop
# ---------------------------------------------------------------------------


def test_wait_for_disconnect_is_true_after_the_client_closes_mid_stall(server):
    server.script(text="one two three", stall_after=1)
    sock = raw_request(server, "openai")
    data = read_until(sock, b'"one"')
    assert b'"one"' in data and b'"two"' not in data
    assert server.wait_for_disconnect(0.05) is False
    sock.close()
    assert server.wait_for_disconnect(5) is True
    assert server.disconnects == 1
    assert server.wait_idle(5) is True
    assert server.open_connections == 0


@pytest.mark.parametrize("provider,keepalive", [
    ("openai", b": keepalive\n\n"),
    ("anthropic", b'event: ping\ndata: {"type": "ping"}\n\n'),
])
def test_stall_sends_keepalives_until_the_client_leaves(server, provider, keepalive):
    server.script(text="one two", stall_after=1, keepalive_interval=0.01)
    sock = raw_request(server, provider)
    data = read_until(sock, keepalive, count=3 + (provider == "anthropic"))
    sock.close()
    assert data.count(keepalive) >= 3
    assert b"two" not in data
    assert server.wait_for_disconnect(5)


def test_no_response_reads_the_request_and_never_answers(server):
    server.script(no_response=True)
    sock = raw_request(server, "anthropic")
    assert server.wait_for_requests(1, 5)
    assert server.last_request.json["model"] == "claude-3-5-haiku-latest"
    sock.settimeout(0.1)
    with pytest.raises(socket.timeout):
        sock.recv(1)
    sock.close()
    assert server.wait_for_disconnect(5)
    assert server.wait_idle(5)


def test_wait_idle_waits_for_keep_alive_connections_to_close(server):
    path, body = STREAM_REQUESTS["openai"]
    session = requests.Session()
    try:
        session.post(server.url + path, json=body, timeout=10)
        session.post(server.url + path, json=body, timeout=10)
        assert server.open_connections == 1
        assert server.wait_idle(0.05) is False
    finally:
        session.close()
    assert server.wait_idle(5)
    assert server.disconnects == 1
    assert len(server.requests) == 2


def test_stop_with_a_stalled_connection_is_prompt_and_leaves_no_thread():
    fake = FakeLLMServer().start()
    fake.script(stall_after=0)
    fake.script(no_response=True)
    # One request at a time: replies are taken in the order requests arrive,
    # and two connections opened together may arrive in either order.
    with raw_request(fake, "openai") as stalled:
        read_until(stalled, b"\r\n\r\n")
        with raw_request(fake, "ollama") as silent:
            assert fake.wait_for_requests(2, 5)
            started = time.monotonic()
            fake.stop()
            assert time.monotonic() - started < 1.0
            assert fakellm_threads() == []
            assert fake not in FakeLLMServer.running()
            stalled.settimeout(5)
            silent.settimeout(5)
            read_to_eof(stalled)
            assert read_to_eof(silent) == b""
    assert fake.errors == []


def test_stop_is_idempotent():
    fake = FakeLLMServer().start()
    fake.stop()
    fake.stop()
    assert fake not in FakeLLMServer.running()


# ---------------------------------------------------------------------------
# The official SDKs accept what the server sends
# ---------------------------------------------------------------------------

USAGE = {"prompt_tokens": 11, "completion_tokens": 6}


def test_openai_sdk_reads_text_tool_calls_and_usage(server):
    openai = pytest.importorskip("openai")
    server.script(text="Sunny in Paris", tool_calls=[TOOL], usage=USAGE)
    with openai.OpenAI(base_url=server.api_base("openai"), api_key="x", max_retries=0) as client:
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                stream=True,
                                                stream_options={"include_usage": True})
        text, arguments, names, usage, finish = "", "", [], None, None
        for chunk in stream:
            usage = chunk.usage or usage
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or ():
                if call.function.name:
                    names.append((call.id, call.function.name))
                arguments += call.function.arguments or ""
    assert text == "Sunny in Paris"
    assert names == [("call_1", "get_weather")]
    assert json.loads(arguments) == {"city": "Paris"}
    assert finish == "tool_calls"
    assert (usage.prompt_tokens, usage.completion_tokens) == (11, 6)


def test_openai_sdk_raises_on_an_inband_error(server):
    openai = pytest.importorskip("openai")
    server.script(text="one two", inband_error_after=1)
    with openai.OpenAI(base_url=server.api_base("openai"), api_key="x", max_retries=0) as client:
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                stream=True)
        with pytest.raises(openai.APIError):
            for _ in stream:
                pass


def test_anthropic_sdk_reads_text_thinking_tool_use_and_usage(server):
    anthropic = pytest.importorskip("anthropic")
    server.script(text="Sunny in Paris", reasoning="Check the weather", tool_calls=[TOOL],
                  usage=USAGE)
    with anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0) as client:
        with client.messages.stream(model="claude-3-5-haiku-latest", max_tokens=50,
                                    messages=MESSAGES) as stream:
            text = "".join(stream.text_stream)
            message = stream.get_final_message()
    assert text == "Sunny in Paris"
    kinds = [block.type for block in message.content]
    assert kinds == ["thinking", "text", "tool_use"]
    assert message.content[0].thinking == "Check the weather"
    assert (message.content[2].name, message.content[2].input) == ("get_weather",
                                                                   {"city": "Paris"})
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 6)


def test_anthropic_sdk_raises_on_overloaded_event_and_sees_429(server):
    anthropic = pytest.importorskip("anthropic")
    server.script(text="one two", inband_error_after=1)
    server.script(error_status=429, retry_after=2)
    with anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0) as client:
        with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
            with client.messages.stream(model="claude-3-5-haiku-latest", max_tokens=50,
                                        messages=MESSAGES) as stream:
                stream.until_done()
        with pytest.raises(anthropic.RateLimitError) as caught:
            client.messages.create(model="claude-3-5-haiku-latest", max_tokens=50,
                                   messages=MESSAGES)
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.body["error"]["type"] == "rate_limit_error"


def test_ollama_client_reads_text_tool_calls_and_counts(server):
    ollama = pytest.importorskip("ollama")
    server.script(text="Sunny in Paris", tool_calls=[TOOL], usage=USAGE)
    client = ollama.Client(host=server.url)
    try:
        parts = list(client.chat(model="llama3.2", messages=MESSAGES, stream=True))
    finally:
        client._client.close()
    assert "".join(part.message.content or "" for part in parts) == "Sunny in Paris"
    calls = [call for part in parts for call in part.message.tool_calls or ()]
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"})]
    assert parts[-1].done and parts[-1].done_reason == "stop"
    assert (parts[-1].prompt_eval_count, parts[-1].eval_count) == (11, 6)


def test_ollama_client_raises_on_an_inband_error(server):
    ollama = pytest.importorskip("ollama")
    server.script(text="one two", inband_error_after=1)
    client = ollama.Client(host=server.url)
    try:
        with pytest.raises(ollama.ResponseError, match="error was encountered"):
            for _ in client.chat(model="llama3.2", messages=MESSAGES, stream=True):
                pass
    finally:
        client._client.close()


def test_google_genai_reads_text_function_call_and_usage(server):
    genai = pytest.importorskip("google.genai")
    types = pytest.importorskip("google.genai.types")
    server.script(text="Sunny in Paris", tool_calls=[TOOL], usage=USAGE)
    client = genai.Client(api_key="x", http_options=types.HttpOptions(base_url=server.url))
    try:
        responses = list(client.models.generate_content_stream(model="gemini-2.0-flash",
                                                               contents="Hi"))
    finally:
        client.close()
    text = "".join(part.text for r in responses for part in r.candidates[0].content.parts
                   if part.text)
    calls = [call for r in responses for call in r.function_calls or ()]
    assert text == "Sunny in Paris"
    assert [(call.name, call.args) for call in calls] == [("get_weather", {"city": "Paris"})]
    assert responses[-1].candidates[0].finish_reason == types.FinishReason.STOP
    usage = responses[-1].usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count) == (11, 6)
    assert server.last_request.provider == "gemini"


def test_official_sdks_read_non_streaming_bodies(server):
    openai = pytest.importorskip("openai")
    anthropic = pytest.importorskip("anthropic")
    genai = pytest.importorskip("google.genai")
    types = pytest.importorskip("google.genai.types")
    for _ in range(3):
        server.script(text="whole answer", usage=USAGE)
    with openai.OpenAI(base_url=server.api_base("openai"), api_key="x", max_retries=0) as oai:
        completion = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    with anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0) as claude:
        message = claude.messages.create(model="claude-3-5-haiku-latest", max_tokens=5,
                                         messages=MESSAGES)
    client = genai.Client(api_key="x", http_options=types.HttpOptions(base_url=server.url))
    try:
        gemini = client.models.generate_content(model="gemini-2.0-flash", contents="Hi")
    finally:
        client.close()
    assert completion.choices[0].message.content == "whole answer"
    assert completion.usage.total_tokens == 17
    assert message.content[0].text == "whole answer"
    assert gemini.text == "whole answer"


# -- OpenAI paths only under /v1 -------------------------------------------------


def test_openai_style_paths_are_served_only_under_v1(server):
    server.script(text="not for you")
    with requests.Session() as session:
        bare = session.post(server.url + "/chat/completions",
                            json={"model": "gpt-4o-mini", "messages": [], "stream": True},
                            timeout=10)
        models = session.get(server.url + "/models", timeout=10)
        listed = session.get(server.url + "/v1/models", timeout=10)

    assert bare.status_code == 404
    assert "no route for POST /chat/completions" in bare.json()["error"]["message"]
    assert models.status_code == 404
    assert listed.status_code == 200
    assert server.pending == 1  # the scripted reply still waits for a real chat request


# -- python -m litestream.testing -------------------------------------------------


def test_python_m_litestream_testing_serves_until_ctrl_c():
    import os
    import signal
    import subprocess
    import sys

    import litestream as ls

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    # A child inherits an ignored SIGINT (background jobs, some CI runners); a
    # handled one is reset to the default by exec: handle it while starting.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen([sys.executable, "-m", "litestream.testing"], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        banner = process.stdout.readline()
        bases = {}
        while len(bases) < 7:
            provider, base = process.stdout.readline().split()
            bases[provider] = base
        stream = ls.completion("anthropic", "claude-3-5-haiku-latest",
                               messages=[{"role": "user", "content": "Hi"}], stream=True,
                               api_key="test", api_base=bases["anthropic"])
        with stream:
            text = "".join(chunk.content or "" for chunk in stream)
        response = ls.completion("openai", "gpt-4o-mini",
                                 messages=[{"role": "user", "content": "Hi"}],
                                 api_key="test", api_base=bases["openai"])
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert banner.startswith("FakeLLMServer on http://127.0.0.1:")
    assert bases["openai"].endswith("/v1") and bases["openrouter"].endswith("/api/v1")
    assert text == "Hello from FakeLLMServer!"
    assert response.content == "Hello from FakeLLMServer!"
    assert process.returncode == 0, stderr
    assert "FakeLLMServer stopped" in stderr
