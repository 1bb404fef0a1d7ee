"""README.md shows the committed kernel table and chart (bench/readme.py copies them in): the
copy must match bench/results/kernels.md, so results committed without it fail here."""
import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _readme_tool():
    path = ROOT / "bench" / "readme.py"
    if not path.exists():                       # tests run from an installed package only
        pytest.skip("no source checkout (bench/readme.py)")
    spec = importlib.util.spec_from_file_location("bench_readme", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_shows_the_committed_kernel_table_and_chart():
    tool = _readme_tool()
    readme = tool.README.read_text()
    assert tool.with_block(readme) == readme, "run python bench/readme.py"
    assert "(bench/results/kernels.png)" in readme
    assert (ROOT / "bench" / "results" / "kernels.png").exists()


def test_the_tool_replaces_only_its_block(tmp_path, monkeypatch):
    tool = _readme_tool()
    table = tmp_path / "kernels.md"
    table.write_text("| a |\n|---|\n| 1 |\n")
    monkeypatch.setattr(tool, "TABLE", table)
    text = f"before\n{tool.BEGIN}\nold table\n{tool.END}\nafter\n"
    new = tool.with_block(text)
    assert new.startswith("before\n") and new.endswith("\nafter\n")
    assert "old table" not in new and "| 1 |" in new
    with pytest.raises(ValueError, match="no block"):
        tool.with_block("no markers here")
