from __future__ import annotations

from benchmarks import update_readme


def test_splice_replaces_only_marked_sections_with_existing_tables(tmp_path, monkeypatch):
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "results" / "a.md").write_text("| x |\n|---|\n| 1 |\n")
    monkeypatch.setattr(update_readme, "REPO", tmp_path)
    readme = (
        "intro\n<!-- results:a -->\nold\n<!-- /results:a -->\n<!-- results:b -->\nkeep\n<!-- /results:b -->\n"
    )
    text, done = update_readme.splice(readme)
    assert done == ["a"]
    assert "| 1 |" in text and "old" not in text and "keep" in text
    # splicing twice is stable
    assert update_readme.splice(text)[0] == text
