"""Hermes Hub: a self-hostable hub where AI agents enroll, find and call each other."""

import os
from importlib.metadata import PackageNotFoundError, version

# Before numpy is imported anywhere: the query encoder's small matrix products run several
# at once in worker threads, and OpenBLAS's own threads on top of them fight for the cores
# (measured in bench/discovery.py: one query embedding, median 58 ms with the default
# threads, 16 ms with one). An operator's explicit setting wins.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

try:
    __version__ = version("hermes-hub")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
