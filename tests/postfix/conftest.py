"""The private Postfix instance of the end-to-end tests of this package (tests/support/
postfix.py): one per test module, started when a test first asks for it and always stopped,
with every process it started, when the module ends, whatever the tests did."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postfix import PostfixInstance, running_instance, unavailable


@pytest.fixture(scope="module")
def postfix_instance() -> Iterator[PostfixInstance]:
    why = unavailable()
    if why:
        pytest.skip(why)
    with running_instance() as instance:
        yield instance
