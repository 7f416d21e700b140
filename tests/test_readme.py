"""The README's examples must keep working, and CI must run the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_readme_python_examples_run(capsys):
    blocks = code_blocks("python")
    assert blocks, "README.md has no Python example"
    namespace: dict = {}  # the blocks build on each other, as a reader running them in order would
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "[(32, 32), (64, 64)]" in printed
    assert "(2, 1, 32, 32) [(2, 4, 4), (2, 8, 8)]" in printed
    assert "torch.Size([8, 1, 32, 32]) 2" in printed
    assert "(1, 1, 32, 32, 32) [(1, 4, 4, 4), (1, 8, 8, 8)]" in printed


def test_ci_runs_the_quick_start_test_command():
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = [
        line
        for block in re.findall(r"```bash\n(.*?)```", quick_start, flags=re.DOTALL)
        for line in block.strip().splitlines()
    ]
    test_commands = [command for command in commands if "pytest" in command]
    assert len(test_commands) == 1
    ci_script = (ROOT / ".ci" / "run").read_text()
    assert test_commands[0] in ci_script.splitlines()
