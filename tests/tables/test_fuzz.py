"""Hypothesis: no table source file, however malformed, makes loading or lookup raise."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcarrier.tables import open_table

LINES = st.lists(
    st.text(alphabet="/!\\ab(){}[]$1.:*+?^|# \tifendIFxAimsU0123456789/", max_size=30),
    max_size=8,
)


@pytest.mark.parametrize("kind", ["regexp", "pcre", "cidr", "texthash"])
@settings(max_examples=150, deadline=None)
@given(lines=LINES, key=st.sampled_from(["a", "ab1", "10.0.0.1", "::1", "", "if"]))
def test_any_source_loads_and_answers(kind: str, lines: list[str], key: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        table = open_table(f"{kind}:{path}")
        value = table.lookup(key)
        assert value is None or isinstance(value, str)
        assert all(isinstance(w, str) and "\n" not in w for w in table.warnings)
