"""Retry delays: 2, 4, 8 ... seconds, capped at max_attempt_wait_time."""

from __future__ import annotations

__all__ = ["retry_delay"]


def retry_delay(attempt: int, cap: float) -> float:
    """Delay before retry number `attempt` (1-based)."""
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    return float(min(cap, 2.0 ** min(attempt, 30)))
