"""Myers' O((N+M)D) shortest edit script (E. Myers, "An O(ND) Difference Algorithm", 1986)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["matching_pairs"]


def matching_pairs(
    a: Sequence[str], b: Sequence[str], max_edits: int
) -> list[tuple[int, int]] | None:
    """Index pairs (i, j) with a[i] == b[j] of a longest common subsequence, in order.

    Returns None when turning `a` into `b` takes more than `max_edits` insertions and deletions.
    """
    n, m = len(a), len(b)
    # v[k + off]: furthest x reached on diagonal k = x - y; rounds[d] is v before round d.
    off = max_edits + 1
    v = [0] * (2 * max_edits + 3)
    rounds: list[list[int]] = []
    for d in range(max_edits + 1):
        rounds.append(v[off - d - 1 : off + d + 2])
        for k in range(-d, d + 1, 2):
            if k == -d or (k != d and v[off + k - 1] < v[off + k + 1]):
                x = v[off + k + 1]  # step down: insert b[y]
            else:
                x = v[off + k - 1] + 1  # step right: delete a[x]
            y = x - k
            while x < n and y < m and a[x] == b[y]:
                x += 1
                y += 1
            v[off + k] = x
            if x >= n and y >= m:
                return _backtrack(rounds, n, m)
    return None


def _backtrack(rounds: list[list[int]], x: int, y: int) -> list[tuple[int, int]]:
    pairs: list[tuple[int, int]] = []
    for d in range(len(rounds) - 1, -1, -1):
        window = rounds[d]  # holds diagonals -d-1 .. d+1

        def at(k: int, window: list[int] = window, d: int = d) -> int:
            return window[k + d + 1]

        k = x - y
        prev_k = k + 1 if k == -d or (k != d and at(k - 1) < at(k + 1)) else k - 1
        prev_x = at(prev_k)
        prev_y = prev_x - prev_k
        while x > prev_x and y > prev_y:
            x -= 1
            y -= 1
            pairs.append((x, y))
        x, y = prev_x, prev_y
    pairs.reverse()
    return pairs
