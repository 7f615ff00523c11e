"""Process-wide state built once by ``create_app`` and reached through ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from hermes_hub.config import Settings


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    secret_key: str


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
