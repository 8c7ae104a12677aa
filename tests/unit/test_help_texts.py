"""``--help`` reads as plain text in a terminal: no RST markup from the docstrings."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

import consumer.__main__
import evalstream_local.__main__
from producer.__main__ import build_parser

pytestmark = pytest.mark.timeout(10)


PARSERS = [consumer.__main__._parser, evalstream_local.__main__._parser, build_parser]


@pytest.mark.parametrize("parser", PARSERS, ids=["consumer", "local", "producer"])
def test_help_has_no_rst_double_back_ticks(parser: Callable[[], argparse.ArgumentParser]) -> None:
    text = parser().format_help()
    assert "``" not in text
    assert text.startswith("usage: evalstream-")
