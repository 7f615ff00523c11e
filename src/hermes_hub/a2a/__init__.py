"""A2A interoperability: agent cards, the hub as an A2A gateway, and the execute API."""

import os

# a2a-sdk wraps every request handler and client call in OpenTelemetry spans whenever
# OpenTelemetry is installed, even with no exporter configured: per-call work for nothing.
# Off unless the operator asks for it (``OTEL_INSTRUMENTATION_A2A_SDK_ENABLED=true``); it is
# read once, when a2a-sdk is first imported, which this package does.
os.environ.setdefault("OTEL_INSTRUMENTATION_A2A_SDK_ENABLED", "false")
