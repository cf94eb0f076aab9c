from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_put_get_list_delete(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "notes")
    code, out, _ = run(capsys, "doc", "put", "a", '{"title": "hi"}', "--db", db)
    assert code == 0 and out.strip().startswith("1-")
    first_rev = out.strip()
    code, out, _ = run(capsys, "doc", "put", "a", '{"title": "hello"}', "--db", db, "--json")
    second = json.loads(out)
    assert second["id"] == "a" and second["rev"].startswith("2-")
    code, out, _ = run(capsys, "doc", "get", "a", "--db", db, "--json")
    assert json.loads(out) == {
        "id": "a",
        "rev": second["rev"],
        "deleted": False,
        "body": {"title": "hello"},
    }
    code, out, _ = run(capsys, "doc", "get", "a", "--db", db)
    assert json.loads(out) == {"title": "hello"}
    run(capsys, "doc", "put", "b", '{"n": 2}', "--db", db)
    code, out, _ = run(capsys, "doc", "list", "--db", db)
    assert out.split() == ["a", "b"]
    code, out, _ = run(capsys, "doc", "list", "--db", db, "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"] and "body" not in rows[0]
    code, out, _ = run(capsys, "doc", "list", "--db", db, "--json", "--bodies")
    assert json.loads(out.splitlines()[1])["body"] == {"n": 2}
    code, out, _ = run(capsys, "doc", "delete", "a", "--db", db)
    assert code == 0 and out.strip().startswith("3-")
    code, out, err = run(capsys, "doc", "get", "a", "--db", db)
    assert code == 1 and out == "" and "not found" in err
    code, out, _ = run(capsys, "doc", "get", "a", "--db", db, "--json")
    assert json.loads(out)["deleted"] is True
    assert first_rev != second["rev"]


def test_collections_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "shop")
    run(capsys, "doc", "put", "p1", "{}", "--db", db, "--collection", "inventory.products")
    code, out, _ = run(capsys, "doc", "list", "--db", db, "--collection", "inventory.products")
    assert out.split() == ["p1"]
    code, out, _ = run(capsys, "doc", "list", "--db", db)
    assert out == ""
    code, out, _ = run(capsys, "db", "info", "--db", db, "--json")
    info = json.loads(out)
    assert info["name"] == "shop"
    assert {c["name"]: c["documents"] for c in info["collections"]} == {
        "_default._default": 0,
        "inventory.products": 1,
    }
    code, out, err = run(capsys, "doc", "list", "--db", db, "--collection", "inventory.nope")
    assert code == 1 and "does not exist" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["doc", "put", "a", "not json"], "not valid JSON"),
        (["doc", "put", "a", "[1, 2]"], "JSON object"),
        (["doc", "put", "", "{}"], "invalid document ID"),
        (["doc", "put", "a", "{}", "--collection", "_bad.x"], "invalid scope name"),
        (["doc", "get", "zzz"], "not found"),
    ],
)
def test_errors_go_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    db = str(tmp_path / "e")
    run(capsys, "doc", "put", "seed", "{}", "--db", db)
    code, out, err = run(capsys, *argv, "--db", db)
    assert code == 1 and out == "" and message in err


def test_missing_database_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "doc", "list", "--db", str(tmp_path / "none"))
    assert code == 1 and "no database" in err
    assert not (tmp_path / "none").exists()


def test_console_script_runs(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("peerbase")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    assert "doc" in out.stdout and "db" in out.stdout
    bad = subprocess.run(
        [str(exe), "doc", "get", "x", "--db", str(tmp_path / "x")], capture_output=True, text=True
    )
    assert bad.returncode == 1 and bad.stderr.startswith("peerbase: error:")
