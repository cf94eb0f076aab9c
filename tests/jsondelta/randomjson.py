"""Fast random documents and edits of them, from a `random.Random` seeded by Hypothesis.

Hypothesis draws cost too much for document-sized values; these let the property tests cover
realistic edits (long strings, arrays of records, appends, truncations) within the time budget.
"""

from __future__ import annotations

import random

from engine.jsondelta import JSON

from .strategies import SENTENCES

_KEYS = ["id", "name", "items", "qty", "tags", "text", "0", "1-", "a/b", "~", "", "é"]
_ATOMS: list[JSON] = [None, True, False, 0, 1, -1, 1.0, 0.0, -0.0, 2.5, 2**63 - 1, "", "x"]


def random_value(rng: random.Random, depth: int = 3) -> JSON:
    """A random JSON value, nested at most `depth` levels."""
    roll = rng.random()
    if depth <= 0 or roll < 0.45:
        return _random_scalar(rng)
    if roll < 0.7:
        return [random_value(rng, depth - 1) for _ in range(rng.randrange(8))]
    return {rng.choice(_KEYS): random_value(rng, depth - 1) for _ in range(rng.randrange(6))}


def _random_scalar(rng: random.Random) -> JSON:
    roll = rng.random()
    if roll < 0.4:
        return rng.choice(_ATOMS)
    if roll < 0.6:
        return rng.choice(SENTENCES) * rng.randrange(1, 4)
    if roll < 0.8:
        return "".join(rng.choice("ab é☃🎉|+-=0123\n\"\\") for _ in range(rng.randrange(12)))
    return rng.choice([rng.randrange(-(2**63), 2**63), rng.uniform(-1e6, 1e6)])


def random_document(rng: random.Random) -> dict[str, JSON]:
    """A document body: a long text, a list of records and arbitrary nested values."""
    return {
        "text": rng.choice(SENTENCES) * rng.randrange(1, 5),
        "items": [random_value(rng, 2) for _ in range(rng.randrange(12))],
        "doc": random_value(rng, 4),
    }


def random_edit(rng: random.Random, value: JSON, rate: float = 0.3) -> JSON:
    """A copy of `value` with a few random changes at random depths."""
    if rng.random() < rate / 4:
        return random_value(rng, 2)
    if isinstance(value, dict):
        out: dict[str, JSON] = {}
        for key, item in value.items():
            roll = rng.random()
            if roll < rate / 3:
                continue
            out[key] = random_edit(rng, item, rate) if roll < rate else item
        if rng.random() < rate:
            out[rng.choice(_KEYS)] = random_value(rng, 2)
        return out
    if isinstance(value, list):
        items = [random_edit(rng, item, rate) if rng.random() < rate else item for item in value]
        roll = rng.random()
        if roll < rate / 3:
            del items[rng.randrange(len(items) + 1) :]
        elif roll < rate * 2 / 3:
            items.extend(random_value(rng, 1) for _ in range(rng.randrange(1, 4)))
        elif roll < rate:
            items.insert(rng.randrange(len(items) + 1), random_value(rng, 1))
        return items
    if isinstance(value, str) and value and rng.random() < 0.8:
        start = rng.randrange(len(value))
        end = min(len(value), start + rng.randrange(10))
        insert = "".join(rng.choice("xé☃ ") for _ in range(rng.randrange(5)))
        return value[:start] + insert + value[end:]
    if rng.random() < rate:
        return _random_scalar(rng)
    return value
