"""Shared test set-up: no test may reach the network, plots never open windows, runs are seeded."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

# Set before anything imports huggingface_hub/transformers: the hub is never contacted in tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TUTORLIB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The suite runs on two pytest workers (`-n 2`) and each may start a notebook kernel: with torch's default
# of one OpenMP thread per core, the busy-waiting threads oversubscribe a 2-core machine and training
# steps become 4-35x slower. One thread per process is the fast setting here (override by exporting it).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _seeded():
    import torch

    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
