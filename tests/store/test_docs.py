"""docs/design.md's table reference is generated from the registry and up to date."""

from __future__ import annotations

from pathlib import Path

from hessdyn.store import docs, table, tables

DESIGN = Path(__file__).resolve().parents[2] / "docs" / "design.md"


def test_design_notes_list_every_registered_column():
    text = DESIGN.read_text(encoding="utf-8")
    assert docs.splice(text) == text, "run: python -m hessdyn.store.docs docs/design.md"
    for t in tables():
        assert f"`RUN_DIR/{t.folder}/{t.file_name}`" in text
        for name in t.names:
            assert f"| `{name}` |" in text


def test_the_check_fails_on_a_stale_file(tmp_path, capsys):
    stale = tmp_path / "design.md"
    stale.write_text(f"intro\n{docs.BEGIN}\nold\n{docs.END}\noutro\n", encoding="utf-8")
    assert docs.main([str(stale), "--check"]) == 1
    assert "out of date" in capsys.readouterr().out
    assert docs.main([str(stale)]) == 0
    fresh = stale.read_text(encoding="utf-8")
    assert fresh.startswith("intro\n") and fresh.endswith("outro\n")
    assert "| `count_50` |" in fresh and table("spectrum").column("count_50").unit in fresh
    assert docs.main([str(stale), "--check"]) == 0
