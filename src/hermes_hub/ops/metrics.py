"""Prometheus metrics: requests and latency by route template, database pool usage.

With several workers, ``hermes serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` and a scrape
aggregates every worker's figures.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

REQUESTS = Counter(
    "hermes_http_requests_total", "HTTP requests handled.", ["method", "route", "status"]
)
LATENCY = Histogram(
    "hermes_http_request_duration_seconds",
    "HTTP request latency.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
POOL_SIZE = Gauge(
    "hermes_db_pool_size", "Connections the pool keeps open.", multiprocess_mode="livesum"
)
POOL_CHECKED_OUT = Gauge(
    "hermes_db_pool_checked_out", "Connections currently in use.", multiprocess_mode="livesum"
)
POOL_OVERFLOW = Gauge(
    "hermes_db_pool_overflow",
    "Connections opened beyond the pool size.",
    multiprocess_mode="livesum",
)

METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST


class RequestObserver:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def __call__(self, method: str, route: str, status: int, seconds: float) -> None:
        REQUESTS.labels(method, route, str(status)).inc()
        LATENCY.labels(method, route).observe(seconds)

    def sample_pool(self) -> None:
        """Read the pool's figures; called when /metrics is scraped, not per request."""
        pool = self.engine.pool
        if isinstance(pool, QueuePool):
            POOL_SIZE.set(pool.size())
            POOL_CHECKED_OUT.set(pool.checkedout())
            POOL_OVERFLOW.set(max(pool.overflow(), 0))


def render_metrics() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
