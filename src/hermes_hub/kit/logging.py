"""Structured logs: JSON lines (or console in dev), each carrying the request id."""

from __future__ import annotations

import logging
import re
import sys

import structlog

# Browsers pass a WebSocket's bearer token in the query string, and uvicorn logs the path
# with its query string when it accepts or refuses a socket.
_QUERY_TOKEN = re.compile(r"([?&]token=)[^&\s]*")


class RedactQueryTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _QUERY_TOKEN.sub(r"\1[redacted]", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True


def configure_logging(*, level: str = "info", fmt: str = "json") -> None:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer()
    )
    numeric_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        # Not cached: tests and the CLI reconfigure logging, and a cached logger would keep
        # the first configuration. The cost is a few microseconds per call.
        cache_logger_on_first_use=False,
    )
    # Route stdlib loggers (uvicorn, sqlalchemy, alembic) through the same renderer.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
    logging.getLogger("uvicorn.access").disabled = True
    uvicorn_error = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, RedactQueryTokens) for f in uvicorn_error.filters):
        uvicorn_error.addFilter(RedactQueryTokens())
    # /readyz reads the schema revision through Alembic, which announces itself at INFO.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
