"""Frames recorded from real Couchbase Lite 3.2.4 decode to the recorded messages, CRCs and ACKs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.blip.vectors import DATA, SHARED, body_matches, check_crcs, load, replay, vector_files

FILES = vector_files()


def test_vectors_are_available() -> None:
    assert FILES, "no recorded sessions found"
    assert (DATA / "push-3.jsonl").exists()


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_recorded_session_decodes(path: Path) -> None:
    expected = load(path)
    replayed = replay(path)
    frames = 0
    for key, exp in expected.items():
        frames += check_crcs(exp.frames)
        got = replayed.messages.get(key, [])
        assert [(kind, number) for kind, number, _, _ in got] == [
            (kind, number) for kind, number, _, _ in exp.messages
        ]
        for (_, number, props, body), (_, _, exp_props, exp_body) in zip(
            got, exp.messages, strict=True
        ):
            assert props == {k: str(v) for k, v in exp_props.items()}, number
            assert body_matches(body, exp_body), number
        assert replayed.acks.get(key, []) == exp.acks
    assert frames > 0


def test_blob_acks_follow_the_recorded_byte_counts() -> None:
    path = SHARED / "cbl-3.2.4-sessions" / "blob.jsonl"
    expected = load(path)
    replayed = replay(path)
    counts = [
        rec["ackBytes"] for exp in expected.values() for rec in exp.frames if "ackBytes" in rec
    ]
    assert counts == [65508, 131016, 196524] * 2
    assert sum(len(a) for a in replayed.acks.values()) == 6
