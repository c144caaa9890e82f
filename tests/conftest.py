from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakeprovider import FakeProvider

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def make_fake_provider() -> Iterator[Callable[..., FakeProvider]]:
    """A factory of started fake provider servers (tests/fakeprovider.py), stopped at teardown:
    ``make_fake_provider(style="page", page_size=100, clock_offset_s=-300)``."""
    started: list[FakeProvider] = []

    def make(**options: Any) -> FakeProvider:
        provider = FakeProvider(**options).start()
        started.append(provider)
        return provider

    yield make
    for provider in started:
        provider.stop()


@pytest.fixture
def fake_provider(make_fake_provider: Callable[..., FakeProvider]) -> FakeProvider:
    """A started fake provider with the default options (one page, bare array body); change its
    ``default`` collection, ``records``, ``clock_offset_s`` and faults as the test needs."""
    return make_fake_provider()
