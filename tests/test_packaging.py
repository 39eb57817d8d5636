"""Packaging: environment.yml names every dependency of pyproject.toml; the console script works."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_names_every_dependency_with_a_comment():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]} | {_name(r) for r in project["optional-dependencies"]["dev"]}
    lines = [ln for ln in (ROOT / "environment.yml").read_text().splitlines() if ln.strip().startswith("- ")]
    listed = {}
    for ln in lines:
        item = ln.strip()[2:]
        listed[_name(item.split("#")[0])] = "#" in item
    missing = sorted(wanted - set(listed))
    assert not missing, f"environment.yml lacks {missing}"
    uncommented = sorted(n for n in wanted if not listed[n])
    assert not uncommented, f"environment.yml lines without a comment: {uncommented}"


def test_console_script_and_module_entry_point():
    for cmd in (["tutorlib", "--help"], [sys.executable, "-m", "tutorlib", "--help"]):
        exe = Path(sys.executable).parent / "tutorlib" if cmd[0] == "tutorlib" else None
        if exe is not None:
            cmd = [str(exe), "--help"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        for sub in ("doctor", "train", "grade", "build-exercises", "bench"):
            assert sub in out.stdout


def test_readme_quick_start_has_two_commands_and_test_command_matches_ci():
    readme = (ROOT / "README.md").read_text()
    assert "bash run.sh lab" in readme and "bash run.sh test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "run.sh test" in ci
