"""`fill` and `clear` find their field in one script pass, and decide as Playwright's own checks did.

Every kind of target (plain fields, read-only and disabled ones, fields in a disabled fieldset
or under `aria-disabled`, contenteditable, a label, a button, a shadow root, a duplicated id, a
missing id) is judged by `locate_editable` and by the two calls it replaces (`locate`, then
`is_editable`): both refuse, or both hand back the same element.
"""

from __future__ import annotations

from collections.abc import Iterator

import playwright.sync_api as pw
import pytest
from playwright.sync_api import sync_playwright

from engine import playwright_calls
from engine.actions import ActionError, _require_editable, locate, locate_editable
from engine.config import CHROMIUM_FLAGS, find_chromium

PAGE = """
<input bid="1" value="plain">
<textarea bid="2">text</textarea>
<input bid="3" readonly value="read-only">
<input bid="4" disabled value="disabled">
<fieldset disabled><input bid="5" value="in a disabled fieldset"></fieldset>
<div aria-disabled="true"><input bid="6" value="under aria-disabled"></div>
<div id="disabled-host" aria-disabled="true"></div>
<div bid="7" contenteditable="true">editable div</div>
<label bid="8" for="target">a label</label><input id="target" bid="9" value="labelled">
<button bid="10">a button</button>
<input bid="11" value="first copy"><input bid="11" value="second copy">
<div id="host"></div>
<input bid="13" type="password" value="secret">
<select bid="14"><option>one</option></select>
<script>
  const root = document.getElementById("host").attachShadow({mode: "open"});
  root.innerHTML = '<input bid="12" value="in a shadow root">';
  const shut = document.getElementById("disabled-host").attachShadow({mode: "open"});
  shut.innerHTML = '<input bid="15" value="in a shadow root under aria-disabled">';
</script>
"""
IDS = [str(n) for n in range(1, 16)] + ["404"]


@pytest.fixture(scope="module")
def page() -> Iterator[pw.Page]:
    playwright_calls.install()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), args=list(CHROMIUM_FLAGS))
        try:
            page = browser.new_page()
            page.set_content(PAGE)
            yield page
        finally:
            browser.close()


def _judged(page: pw.Page, find: object, element_id: str) -> str:
    """What the field's value is after filling the element found, or the refusal."""
    try:
        target = find(page, element_id)  # type: ignore[operator]
    except ActionError as refused:
        return f"refused: {refused}"
    return str(target.evaluate("e => e.outerHTML"))


def _before(page: pw.Page, element_id: str) -> pw.Locator:
    target = locate(page, element_id)
    _require_editable(target, element_id)
    return target


@pytest.mark.parametrize("element_id", IDS)
def test_same_target_or_same_refusal_as_playwrights_checks(page: pw.Page, element_id: str) -> None:
    try:
        expected = _judged(page, _before, element_id)
    except pw.Error as error:  # Playwright refuses some targets itself (a button has no editable state)
        with pytest.raises(pw.Error) as caught:
            _judged(page, locate_editable, element_id)
        assert str(caught.value).split(":")[0] == str(error).split(":")[0]
        return
    assert _judged(page, locate_editable, element_id) == expected


def test_a_plain_field_is_filled(page: pw.Page) -> None:
    locate_editable(page, "1").fill("new text", timeout=1_000)
    assert page.locator('[bid="1"]').input_value() == "new text"
