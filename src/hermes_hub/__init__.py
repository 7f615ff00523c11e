"""Hermes Hub: a self-hostable hub where AI agents enroll, find and call each other."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hermes-hub")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
