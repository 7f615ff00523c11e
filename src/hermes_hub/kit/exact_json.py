"""Routes whose JSON numbers are parsed exactly, as decimals, never through binary floats.

``json.loads`` turns ``4.2500000000000001`` into the float ``4.25``: the extra precision is
rounded away before validation could refuse it. Money routes use this route class so an
amount is checked as the client wrote it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class ExactNumbersRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), parse_float=Decimal)
        return self._json


class ExactNumbersRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact_handler(request: Request) -> Response:
            return await handler(ExactNumbersRequest(request.scope, request.receive))

        return exact_handler
