"""The SDK example in the README is examples/echo_agent.py, which the agent tests run."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_shows_the_tested_example_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / "examples" / "echo_agent.py").read_text()
    section = readme.split("## Write an agent in 20 lines (the SDK)", 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert block == example
    code_lines = [line for line in example.splitlines() if line.strip()]
    assert len(code_lines) <= 20
