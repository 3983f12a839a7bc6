"""StreamMeter: tokens, time and tokens per second of a stream, for the status lines."""

from __future__ import annotations

import time
from typing import Optional

from litestream.tokens import estimate_tokens
from litestream.types import Usage

__all__ = ["StreamMeter"]


class StreamMeter:
    """Measures the text of a stream as it passes: tokens, elapsed time, tokens per second.

    When the provider reports usage (:meth:`add_usage`), its completion token
    count is the one shown. Otherwise the tokens are estimated with
    :func:`~litestream.tokens.estimate_tokens` on the whole text at the end
    (estimating each chunk apart would count at least one token per chunk),
    and the summary says so.

    Example:
        >>> meter = StreamMeter()
        >>> meter.add("Hello, world!")
        >>> meter.tokens, meter.usage_text()
        (4, '~4 tokens (estimated)')
    """

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.first_text_at: Optional[float] = None
        self.finished_at: Optional[float] = None
        self.usage: Optional[Usage] = None
        self._parts: list[str] = []

    def add(self, text: Optional[str]) -> None:
        """Count one chunk's text (``None`` and ``""`` are ignored)."""
        if not text:
            return
        if self.first_text_at is None:
            self.first_text_at = time.monotonic()
        self._parts.append(text)

    def add_usage(self, usage: Optional[Usage]) -> None:
        """Keep the usage a chunk reported (the last one wins; ``None`` is ignored)."""
        if usage is not None:
            self.usage = usage

    def finish(self) -> None:
        """Stop the clock (the first call counts)."""
        if self.finished_at is None:
            self.finished_at = time.monotonic()

    @property
    def text(self) -> str:
        """All the text counted so far."""
        return "".join(self._parts)

    @property
    def reported(self) -> bool:
        """True when the provider reported the usage (and did not estimate it itself)."""
        return self.usage is not None and not getattr(self.usage, "estimated", False)

    @property
    def tokens(self) -> int:
        """The completion tokens: as the provider reported them, else estimated from the text."""
        if self.usage is not None and self.usage.completion_tokens:
            return self.usage.completion_tokens
        return estimate_tokens(self.text)

    @property
    def elapsed_ms(self) -> int:
        """Milliseconds from the start to :meth:`finish` (or to now)."""
        end = self.finished_at if self.finished_at is not None else time.monotonic()
        return round((end - self.started) * 1000)

    @property
    def first_text_ms(self) -> Optional[int]:
        """Milliseconds until the first text arrived, or ``None`` when none did."""
        if self.first_text_at is None:
            return None
        return round((self.first_text_at - self.started) * 1000)

    @property
    def tokens_per_second(self) -> float:
        """Completion tokens per second over the elapsed time (0.0 when no time passed)."""
        elapsed_ms = self.elapsed_ms
        return self.tokens * 1000.0 / elapsed_ms if elapsed_ms > 0 else 0.0

    def usage_text(self) -> str:
        """``"18 prompt + 4 completion = 22 tokens (reported)"``, or ``"~4 tokens (estimated)"``."""
        if self.usage is not None and self.reported:
            usage = self.usage
            return (f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion "
                    f"= {usage.total_tokens} tokens (reported)")
        return f"~{self.tokens} tokens (estimated)"

    def summary(self) -> str:
        """Return ``"Tokens: ~42 tokens (estimated) | Time: 812ms | Tokens/sec: 51.7"``."""
        return (f"Tokens: {self.usage_text()} | Time: {self.elapsed_ms}ms | "
                f"Tokens/sec: {self.tokens_per_second:.1f}")
