"""Shared helpers for benchmarks: the result record, timing, table and JSON output."""

from __future__ import annotations

import json
import random
import string
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

RESULTS_DIR = Path(__file__).parent / "results"


@dataclass
class Result:
    """One benchmark figure, compared against a baseline measured in the same run."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    goal: float | None = None  # minimum ratio value/baseline (or max value if no baseline)
    lower_is_better: bool = False
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        assert self.baseline is not None
        return self.value / self.baseline

    @property
    def passed(self) -> bool | None:
        if self.goal is None:
            return None
        measured = self.ratio if self.ratio is not None else self.value
        if self.lower_is_better:
            return measured <= self.goal
        return measured >= self.goal

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["ratio"] = self.ratio
        data["passed"] = self.passed
        return data


class Timer:
    """Context manager measuring wall-clock seconds."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def make_docs(
    count: int, size: int = 1000, seed: int = 1234
) -> Iterator[tuple[str, dict[str, object]]]:
    """Deterministic documents of about `size` bytes of JSON each."""
    rng = random.Random(seed)
    letters = string.ascii_letters + string.digits
    # A pool of words drawn once keeps generation cheap (100k docs in a few seconds).
    pool = ["".join(rng.choices(letters, k=rng.randint(3, 12))) for _ in range(5000)]
    for i in range(count):
        words = []
        used = 90
        while used < size:
            word = pool[rng.randrange(len(pool))]
            words.append(word)
            used += len(word) + 1
        yield (
            f"doc-{i:07d}",
            {
                "type": "bench",
                "n": i,
                "score": rng.random(),
                "tags": [words[0], words[-1]],
                "text": " ".join(words),
            },
        )


def median_by(items: Sequence[T], key: Callable[[T], float]) -> T:
    """The item whose key is the median (the lower middle for an even count)."""
    ordered = sorted(items, key=key)
    return ordered[(len(ordered) - 1) // 2]


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def print_table(results: list[Result]) -> None:
    header = ("name", "figure", "unit", "baseline", "ratio", "goal", "pass")
    rows = [header]
    for r in results:
        goal = "-" if r.goal is None else ("<=" if r.lower_is_better else ">=") + fmt(r.goal)
        passed = {None: "-", True: "PASS", False: "FAIL"}[r.passed]
        rows.append((r.name, fmt(r.value), r.unit, fmt(r.baseline), fmt(r.ratio), goal, passed))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def write_json(results: list[Result], path: Path | None = None) -> Path:
    path = path or RESULTS_DIR / "latest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([r.to_json() for r in results], indent=2) + "\n")
    return path
