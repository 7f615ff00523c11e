"""What every demo needs around its story: a hub (a throwaway one, or ``--hub URL``), a
folder for the agents' keys, their logs kept out of the narration, and the agents running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any

from hermes_hub.cli.demo.local_hub import local_hub
from hermes_hub.cli.demo.narration import Narrator, escape
from hermes_hub.cli.demo.people import Person
from hermes_hub.cli.output import CliError
from hermes_hub.sdk import HermesError
from hermes_hub.sdk.agent import Agent, AgentHandle

HINTS = {
    429: "each demo signs up 3 to 5 new accounts, and the hub limits sign-ups per client "
    "(HERMES_RATE_LIMIT_REGISTER, 10 an hour by default)",
}
# A demo's story: given the hub's URL, a folder of its own and the narrator, tell it; each
# account it signs up goes into the list, whose clients the stage closes afterwards.
Story = Callable[[str, Path, Narrator, list[Person]], Coroutine[Any, Any, None]]
PRIVATE_ENDPOINT_HINT = (
    "the demo's agents listen on 127.0.0.1, so the hub must run on this machine with "
    "HERMES_ALLOW_PRIVATE_ENDPOINTS=1 (or run the demo without --hub)"
)


@contextlib.contextmanager
def _agent_logs(path: Path) -> Iterator[None]:
    """The agents' own logs (an agent whose work fails logs the traceback, as it should) go to
    a file, not between the lines of the story."""
    root = logging.getLogger()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()


@contextlib.contextmanager
def _folder(keep: Path | None) -> Iterator[Path]:
    """The demo's own folder: ``keep`` (new or empty, left in place), else a temporary one
    removed afterwards."""
    if keep is None:
        folder = Path(tempfile.mkdtemp(prefix="hermes-demo-"))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    keep.mkdir(parents=True, exist_ok=True)
    if any(keep.iterdir()):
        raise CliError(f"--keep needs an empty or new folder: {keep} has files in it")
    yield keep


def stage(
    story: Story,
    *,
    hub: str | None,
    keep: Path | None,
    narrator: Narrator | None = None,
) -> None:
    """Run ``story`` against ``hub`` or a throwaway hub. With ``keep``, the hub's database
    (``hub/``) and the agents' keys and logs (``agents/``) stay in that folder."""
    narrator = narrator or Narrator()
    with _folder(keep) as root:
        agents = root / "agents"
        agents.mkdir()
        if hub is not None:
            narrator.note(
                f"Using the hub at {escape(hub)}: the demo's accounts and agents stay on it "
                "afterwards."
            )
            _play(story, hub, agents, narrator)
            return
        narrator.note("Starting a hub of its own on a new SQLite database (hermes serve)...")
        with local_hub(root / "hub") as url:
            narrator.note(f"The hub is up at {escape(url)} (API docs: {escape(url)}/docs).")
            _play(story, url, agents, narrator)


def _play(
    story: Story,
    url: str,
    folder: Path,
    narrator: Narrator,
) -> None:
    with _agent_logs(folder / "agents.log"):
        try:
            asyncio.run(_told(story, url, folder, narrator))
        except HermesError as exc:
            hint = f": {HINTS[exc.status]}" if exc.status in HINTS else ""
            if exc.code == "endpoint_not_allowed":
                hint = f": {PRIVATE_ENDPOINT_HINT}"
            raise CliError(
                f"the hub refused: {exc.detail} ({exc.status} {exc.code}){hint}"
            ) from exc
        except TimeoutError as exc:
            raise CliError(
                f"the demo waited too long for the hub; the agents' log is {folder / 'agents.log'}"
            ) from exc


async def _told(story: Story, url: str, folder: Path, narrator: Narrator) -> None:
    people: list[Person] = []
    try:
        await story(url, folder, narrator, people)
    finally:
        for person in people:
            await person.client.aclose()


@contextlib.asynccontextmanager
async def running(
    agents: Sequence[Agent], owner: Person, hub_url: str, folder: Path
) -> AsyncIterator[list[AgentHandle]]:
    """Start the agents one after the other (each enrolls, serves A2A and listens) and stop
    them all when the block ends."""
    async with contextlib.AsyncExitStack() as stack:
        handles = [
            await stack.enter_async_context(
                agent.running(hub_url, owner.token, state_dir=folder / "keys")
            )
            for agent in agents
        ]
        yield handles


__all__ = ["Story", "running", "stage"]
