"""Fleece text diffs: the patch string of a `[patch, 0, 2]` delta (Deltas.md, "Delta Format").

A patch is a run of operations over the UTF-8 bytes of the old string: `n=` copies n bytes,
`n-` skips n bytes, `n+bytes|` inserts the n bytes that follow the `+`. The copied and skipped
counts must add up to the old string's length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.jsondelta.errors import DeltaError, Path
from engine.jsondelta.myers import matching_pairs

__all__ = ["apply_text_diff", "make_text_diff"]

# Work limits of one Myers diff, which takes about (length of both sides) x (edits) steps: past
# them a region becomes one replacement. Regions longer than _CHAR_REGION are diffed line by
# line, then word by word, before character by character.
_STEP_BUDGET = 1_000_000
_MAX_EDITS = 500
_CHAR_REGION = 4_000
_SPLITTERS = (re.compile(r"[^\n]*\n|[^\n]+"), re.compile(r"\w+|\s+|[^\w\s]"))

_OP = re.compile(rb"([0-9]{1,18})([=+-])")


@dataclass(slots=True)
class _Change:
    """Replace `removed` (text of the old string) with `added`."""

    removed: str
    added: str


_Segment = str | _Change  # a str is text kept as is


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _common_prefix(a: str, b: str) -> int:
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:  # binary search: slice comparison runs in C
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: str, b: str, limit: int) -> int:
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid :] == b[len(b) - mid :]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _diff_region(a: str, b: str, level: int = 0) -> list[_Segment]:
    """Segments turning `a` into `b`: by characters, or if long by lines, then words."""
    if len(a) + len(b) <= _CHAR_REGION:
        return _diff_tokens(list(a), list(b))
    if level == len(_SPLITTERS):
        return [_Change(a, b)]
    out: list[_Segment] = []
    splitter = _SPLITTERS[level]
    for seg in _diff_tokens(splitter.findall(a), splitter.findall(b)):
        if isinstance(seg, _Change) and seg.removed and seg.added:
            out.extend(_diff_region(seg.removed, seg.added, level + 1))
        else:
            out.append(seg)
    return out


def _diff_tokens(a: list[str], b: list[str]) -> list[_Segment]:
    size = len(a) + len(b)
    pairs = matching_pairs(a, b, min(size, _MAX_EDITS, _STEP_BUDGET // (size + 1)))
    if pairs is None:
        return [_Change("".join(a), "".join(b))]
    out: list[_Segment] = []
    i = j = 0
    for pi, pj in [*pairs, (len(a), len(b))]:
        if pi > i or pj > j:
            out.append(_Change("".join(a[i:pi]), "".join(b[j:pj])))
        if pi < len(a):
            out.append(a[pi])
        i, j = pi + 1, pj + 1
    return out


def _count_cost(n: int) -> int:
    return len(str(n)) + 1 if n else 0


def _change_cost(removed: int, added: int) -> int:
    return _count_cost(removed) + (_count_cost(added) + added + 1 if added else 0)


def _cleanup(segments: list[_Segment]) -> list[_Segment]:
    """Merge adjacent changes, and fold short kept runs into changes when that is shorter."""
    merged: list[_Segment] = []
    for seg in segments:
        last = merged[-1] if merged else None
        if isinstance(seg, _Change) and isinstance(last, _Change):
            merged[-1] = _Change(last.removed + seg.removed, last.added + seg.added)
        elif isinstance(seg, str) and isinstance(last, str):
            merged[-1] = last + seg
        elif seg:
            merged.append(seg)
    out: list[_Segment] = []
    for i, seg in enumerate(merged):
        after = merged[i + 1] if i + 1 < len(merged) else None
        before = out[-1] if out else None
        if isinstance(seg, str) and isinstance(before, _Change) and isinstance(after, _Change):
            kept = _utf8_len(seg)
            r1, a1 = _utf8_len(before.removed), _utf8_len(before.added)
            r2, a2 = _utf8_len(after.removed), _utf8_len(after.added)
            apart = _change_cost(r1, a1) + _count_cost(kept) + _change_cost(r2, a2)
            together = _change_cost(r1 + kept + r2, a1 + kept + a2)
            if together <= apart:
                out[-1] = _Change(before.removed + seg + after.removed, before.added + seg)
                merged[i + 1] = _Change("", after.added)
                continue
        if isinstance(seg, _Change) and isinstance(before, _Change):
            out[-1] = _Change(before.removed + seg.removed, before.added + seg.added)
        else:
            out.append(seg)
    return out


def make_text_diff(old: str, new: str) -> str:
    """Return a patch string that turns `old` into `new` (callers check it is worth sending)."""
    prefix = _common_prefix(old, new)
    suffix = _common_suffix(old, new, min(len(old), len(new)) - prefix)
    mid_old, mid_new = old[prefix : len(old) - suffix], new[prefix : len(new) - suffix]
    segments: list[_Segment] = [old[:prefix]]
    if mid_old and mid_new:
        segments.extend(_diff_region(mid_old, mid_new))
    else:
        segments.append(_Change(mid_old, mid_new))
    segments.append(old[len(old) - suffix :])
    parts: list[str] = []
    for seg in _cleanup(segments):
        if isinstance(seg, str):
            parts.append(f"{_utf8_len(seg)}=")
            continue
        if seg.removed:
            parts.append(f"{_utf8_len(seg.removed)}-")
        if seg.added:
            parts.append(f"{_utf8_len(seg.added)}+{seg.added}|")
    return "".join(parts)


def apply_text_diff(old: str, patch: str, path: Path = ()) -> str:
    """Apply a Fleece text diff `patch` to `old`; raise DeltaError if it does not fit."""
    try:
        src, ops = old.encode("utf-8"), patch.encode("utf-8")
    except UnicodeEncodeError:
        raise DeltaError("text diff or old string is not valid Unicode", path=path) from None
    if not ops:
        raise DeltaError("text diff is empty", path=path)
    out = bytearray()
    pos = at = 0
    while at < len(ops):
        match = _OP.match(ops, at)
        if match is None:
            raise DeltaError(
                f"text diff {patch!r}: expected a byte count and one of '=-+' at byte {at}",
                path=path,
            )
        count, op = int(match[1]), match[2]
        at = match.end()
        if op == b"+":
            end = at + count
            if end >= len(ops) or ops[end] != ord("|"):
                raise DeltaError(
                    f"text diff {patch!r}: the {count}-byte insertion at byte {at} "
                    "is not followed by '|'",
                    path=path,
                )
            out += ops[at:end]
            at = end + 1
            continue
        if pos + count > len(src):
            raise DeltaError(
                f"text diff {patch!r} runs past the end of the {len(src)}-byte old string",
                path=path,
            )
        if op == b"=":
            out += src[pos : pos + count]
        pos += count
    if pos != len(src):
        raise DeltaError(
            f"text diff {patch!r} covers {pos} of the old string's {len(src)} bytes", path=path
        )
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise DeltaError(
            f"text diff {patch!r} splits a UTF-8 character of the old string", path=path
        ) from None
