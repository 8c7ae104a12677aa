"""Fixtures shared by the deployment-artefact tests (``test_deploy_*.py``)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No EVALSTREAM_* variable of this shell leaks into a settings check."""
    for key in list(os.environ):
        if key.startswith("EVALSTREAM_"):
            monkeypatch.delenv(key)
    return monkeypatch
