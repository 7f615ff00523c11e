"""``hermes init NAME``: a ready-to-run agent project built on the SDK's ``Agent`` class."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import typer

from hermes_hub import __version__
from hermes_hub.cli.output import CliError, JsonOption, emit

# The hub's own rule for a capability, checked here so a typo fails now, not at enrollment.
CAPABILITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+-]{0,63}")
MAX_NAME_LENGTH = 100

AGENT_TEMPLATE = '''\
"""{name}: a Hermes Hub agent. It bids on contracts that need {capability_text} and delivers
the work. Change ``bid`` and ``perform`` to make it yours."""

import os

from hermes_hub.sdk import Agent, Bid, Contract


class {class_name}(Agent):
    name = {name_literal}
    description = {description_literal}
    capabilities = [{capability_literal}]
    price = 1.5

    async def bid(self, contract: Contract) -> Bid | None:
        # Never ask more than the requester offers; return None to pass on a contract.
        return Bid(price=min(contract.reward, self.price), eta_seconds=30, confidence=0.9)

    async def perform(self, contract: Contract) -> dict:
        # The real work goes here: what this returns is delivered as the contract's result.
        return {{"text": contract.intent.upper()}}


if __name__ == "__main__":
    token = os.environ.get("HERMES_TOKEN")
    if not token:
        raise SystemExit('Set HERMES_TOKEN first: export HERMES_TOKEN="$(hermes token)"')
    {class_name}().run(
        hub=os.environ.get("HERMES_HUB", "http://127.0.0.1:8080"),
        token=token,
        port={port},
    )
'''

README_TEMPLATE = """\
# {name}

A Hermes Hub agent: it bids on contracts that need `{capability}` and delivers the work
(`perform` in `agent.py`).

## Run it

1. Install it (Python 3.11 or later):

   ```sh
   python -m venv .venv && . .venv/bin/activate && pip install -e .
   ```

2. Log in to your hub and hand the agent your token:

   ```sh
   hermes login --hub http://127.0.0.1:8080
   export HERMES_HUB=http://127.0.0.1:8080 HERMES_TOKEN="$(hermes token)"
   ```

   (A hub on your own machine must accept agents at local addresses: serve it with
   `HERMES_ALLOW_PRIVATE_ENDPOINTS=true`.)

3. Start it:

   ```sh
   python agent.py
   ```

   On its first run it enrolls itself and keeps its key and API key in `.hermes/` (listed in
   `.gitignore`: never commit it). It serves on port {port} and bids on contracts that need
   `{capability}`.

Then, from another shell (one without `HERMES_TOKEN`, so that your own login posts the work;
it needs credits: `hermes wallet balance`), give it work and watch it come back:

```sh
hermes contract create --intent "say hello" --capability {capability} --reward 2
hermes contract list --mine
```
"""

PYPROJECT_TEMPLATE = """\
[project]
name = {project_literal}
version = "0.1.0"
description = {description_literal}
requires-python = ">=3.11"
dependencies = ["hermes-hub>={version}"]

[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[tool.setuptools]
py-modules = ["agent"]
"""

GITIGNORE = """\
# The agent's local state and keys.
.hermes/
.venv/
__pycache__/
*.egg-info/
"""


def _words(name: str) -> list[str]:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.findall(r"[A-Za-z0-9]+", ascii_name)


def project_slug(name: str) -> str:
    """``My Echo Bot`` -> ``my-echo-bot``: the folder and the package name."""
    return "-".join(word.lower() for word in _words(name))


def class_name(name: str) -> str:
    """``my echo bot`` -> ``MyEchoBotAgent``: a valid class name that cannot shadow ``Agent``."""
    camel = "".join(word[:1].upper() + word[1:] for word in _words(name))
    if not camel.endswith("Agent") or camel == "Agent":
        camel = f"{camel}Agent"
    return camel if camel[0].isalpha() else f"Agent{camel}"


def _literal(text: str) -> str:
    # A JSON string is also a valid Python and TOML string literal (same escapes).
    return json.dumps(text, ensure_ascii=False)


def render_project(name: str, *, capability: str, port: int) -> dict[str, str]:
    """The project's files by name."""
    description = f"{name}: repeats what you ask, loudly."
    return {
        "agent.py": AGENT_TEMPLATE.format(
            name=name,
            capability_text=f"'{capability}'",
            class_name=class_name(name),
            name_literal=_literal(name),
            description_literal=_literal(description),
            capability_literal=_literal(capability),
            port=port,
        ),
        "README.md": README_TEMPLATE.format(name=name, capability=capability, port=port),
        "pyproject.toml": PYPROJECT_TEMPLATE.format(
            project_literal=_literal(project_slug(name)),
            description_literal=_literal(description),
            version=__version__,
        ),
        ".gitignore": GITIGNORE,
    }


def _check_name(name: str) -> None:
    if not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise CliError(f"NAME must be 1 to {MAX_NAME_LENGTH} characters")
    if not name.isprintable():
        raise CliError("NAME must be one line of printable characters")
    if not project_slug(name):
        raise CliError(f"NAME needs at least one letter or digit: {name!r}")


def _check_target(directory: Path) -> None:
    if not directory.exists():
        return
    if not directory.is_dir():
        raise CliError(f"{directory} exists and is not a folder")
    if any(directory.iterdir()):
        raise CliError(f"{directory} is not empty; choose another NAME or --dir")


def init_project(
    name: str = typer.Argument(..., help="The agent's name, e.g. 'Echo Bot'."),
    directory: Path | None = typer.Option(
        None, "--dir", help="Where to create the project (default: ./name-as-a-slug)."
    ),
    capability: str = typer.Option("echo", "--capability", "-c", help="What it can do."),
    port: int = typer.Option(9101, "--port", min=1, max=65535, help="Where the agent serves."),
    as_json: bool = JsonOption,
) -> None:
    """Create a ready-to-run agent project: agent.py, README.md, pyproject.toml, .gitignore."""
    _check_name(name)
    if not CAPABILITY.fullmatch(capability):
        raise CliError(f"not a capability: {capability!r} (letters, digits and ._:/+-, at most 64)")
    target = directory if directory is not None else Path(project_slug(name))
    _check_target(target)
    files = render_project(name, capability=capability, port=port)
    try:
        target.mkdir(parents=True, exist_ok=True)
        for file_name, content in files.items():
            # "x": a file appearing meanwhile is never overwritten.
            with (target / file_name).open("x", encoding="utf-8") as file:
                file.write(content)
    except OSError as exc:
        raise CliError(f"cannot create the project in {target}: {exc.strerror or exc}") from exc
    emit(
        {
            "directory": str(target),
            "files": sorted(files),
            "class_name": class_name(name),
        },
        as_json=as_json,
        human=(
            f"created {target} ({', '.join(sorted(files))})\nnext: cd {target} and follow README.md"
        ),
    )
