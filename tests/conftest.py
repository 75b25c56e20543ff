"""Shared fixtures. Each test module may add its own; keep shared ones here."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Tiny models on a 2-core machine: one torch thread per process is several times faster than two
# when a test and the server it started compute at the same time (measured: 16 ms vs 113 ms per
# tiny UNet step), and no slower alone. Set before torch is imported; subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """A models/ tree (checkpoints/, loras/, embeddings/, ...) holding the tiny models of ldm.tiny."""
    from ldm.tiny import make_tiny_models

    root = tmp_path_factory.mktemp("tiny_models")
    make_tiny_models(root)
    return root


@pytest.fixture
def artifacts_dir(request) -> Path:
    """Per-test folder for screenshots and other artifacts (kept under test-artifacts/)."""
    d = ROOT / "test-artifacts" / request.node.name
    d.mkdir(parents=True, exist_ok=True)
    return d
