"""`tasker template register|validate` on a folder with good and bad files: the good ones register, each bad one
is reported, the exit status says some were refused; validate warns about what Tasker ignores."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.coverage import invoke
from tests.e2e.runtime import TEMPLATES

LINEAR = (TEMPLATES / "workflows" / "linear.yaml").read_text()


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "a_good.yaml").write_text(LINEAR)
    (tmp_path / "b_bad.yaml").write_text(
        LINEAR.replace("mathematical_sequence", "broken").replace("[linear_step_3]", "[nope]")
    )
    (tmp_path / "c_good.yaml").write_text(LINEAR.replace("mathematical_sequence", "second"))
    return tmp_path


def test_register_keeps_the_good_files_and_reports_the_bad_one(db_url: str, tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    result = invoke(db_url, "template", "register", str(folder), "--json")
    assert result.exit_code == 1, result.stderr
    rows = json.loads(result.stdout)
    assert sorted(r["template"] for r in rows if r["status"] == "created") == [
        "linear_workflow/mathematical_sequence:1.0.0",
        "linear_workflow/second:1.0.0",
    ]
    assert [Path(r["file"]).name for r in rows if r["status"] == "refused"] == ["b_bad.yaml"]
    assert "b_bad.yaml" in result.stderr and "unknown dependency 'nope'" in result.stderr
    listed = json.loads(invoke(db_url, "template", "list", "--json").stdout)
    assert {t["name"] for t in listed} == {"mathematical_sequence", "second"}


def test_validate_lists_every_error_and_warns_about_ignored_keys(db_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "two_errors.yaml"
    bad.write_text(
        "name: t\nnamespace_name: n\nversion: 1.0.0\nsteps:\n"
        "  - {name: a, depends_on: [x], handler: {callable: m.A}}\n"
        "  - {name: b, depends_on: [y], handler: {callable: m.A}}\n"
    )
    odd = tmp_path / "ignored.yaml"
    odd.write_text(
        "name: u\nnamespace_name: n\nversion: 1.0.0\nsteps:\n"
        "  - {name: a, handler: {callable: m.A}, retry: {limit: 5, backoff_base_ms: 50}}\n"
    )
    result = invoke(db_url, "template", "validate", str(tmp_path))
    assert result.exit_code == 1
    assert "unknown dependency 'x'" in result.stderr and "unknown dependency 'y'" in result.stderr
    assert "ok " in result.stdout and "n/u:1.0.0" in result.stdout
    assert "warning:" in result.stderr and "key 'limit' is not used and is ignored" in result.stderr
    assert "backoff_base_ms 50 is below the documented minimum" in result.stderr


def test_hostile_yaml_is_refused_in_one_line(db_url: str, tmp_path: Path) -> None:
    """An alias bomb and 1000 nested brackets: each refused at once with one line naming the problem."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    (tmp_path / "deep.yaml").write_text("[" * 1000 + "\n")
    for name, problem in (("bomb.yaml", "alias"), ("deep.yaml", "nesting deeper")):
        result = invoke(db_url, "template", "validate", str(tmp_path / name))
        assert result.exit_code == 1
        assert result.stderr.count("\n") == 1 and problem in result.stderr and name in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
