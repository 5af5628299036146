"""The generated reference pages match the code they describe."""

from __future__ import annotations

import pytest

from safebrowse.reference import DOCS, PAGES


@pytest.mark.parametrize("name", sorted(PAGES))
def test_committed_reference_page_is_current(name: str) -> None:
    committed = (DOCS / name).read_text(encoding="utf-8")
    assert committed == PAGES[name](), f"docs/{name} is stale: run `python -m safebrowse.reference`"
