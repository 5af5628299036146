"""`fill` and `clear` on a plain text field take two browser calls, and do what Playwright's do.

Every kind of target (plain fields of each typed kind, read-only and disabled ones, fields in a
disabled fieldset or under `aria-disabled`, hidden, invisible and zero-sized fields, fields in a
closed <details>, number and date inputs, contenteditable, a label, a button, a shadow root, a
duplicated id, a missing id) is filled, and cleared, once by `fill_field` and once by what it
replaces (`locate`, `is_editable`, then Playwright's `fill`), each on a fresh copy of the page:
the outcome (the refusal, or Playwright's error), every field's value, the focused element, the
selection and the events the page saw are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import playwright.sync_api as pw
import pytest
from playwright.sync_api import sync_playwright

from engine import playwright_calls
from engine.actions import ActionError, _require_editable, fill_field, locate
from engine.config import CHROMIUM_FLAGS, find_chromium

PAGE = """
<input bid="1" value="plain">
<textarea bid="2">text</textarea>
<input bid="3" readonly value="read-only">
<input bid="4" disabled value="disabled">
<fieldset disabled><input bid="5" value="in a disabled fieldset"></fieldset>
<div aria-disabled="true"><input bid="6" value="under aria-disabled"></div>
<div bid="7" contenteditable="true">editable div</div>
<label bid="8" for="target">a label</label><input id="target" bid="9" value="labelled">
<button bid="10">a button</button>
<input bid="11" value="first copy"><input bid="11" value="second copy">
<div id="host"></div>
<input bid="13" type="password" value="secret">
<select bid="14"><option>one</option></select>
<div id="disabled-host" aria-disabled="true"></div>
<input bid="16" type="email" value="a@b.c">
<input bid="17" type="search"><input bid="18" type="tel"><input bid="19" type="url">
<input bid="20" type="number" value="3">
<input bid="21" type="date">
<input bid="22" type="checkbox">
<input bid="23" style="visibility: hidden">
<input bid="24" style="display: none">
<input bid="25" style="width: 0; height: 0; padding: 0; border: 0">
<details><summary>more</summary><input bid="26" value="in a closed details"></details>
<input bid="27" style="opacity: 0" value="transparent">
<textarea bid="28" rows="2">a
longer text</textarea>
<script>
(() => {  // a function: set_content runs this again in the same window
  const root = document.getElementById("host").attachShadow({mode: "open"});
  root.innerHTML = '<input bid="12" value="in a shadow root">';
  const shut = document.getElementById("disabled-host").attachShadow({mode: "open"});
  shut.innerHTML = '<input bid="15" value="in a shadow root under aria-disabled">';
  window.seen = [];
  // ("select" is left out: Chromium queues it, so when it comes relative to the typing varies.)
  for (const type of ["keydown", "keyup", "beforeinput", "input", "change", "focus", "focusin"]) {
    document.addEventListener(type, (e) => window.seen.push(type + ":" + (e.target.getAttribute &&
        e.target.getAttribute("bid"))), true);
  }
})();
</script>
"""
IDS = [str(n) for n in range(1, 29)] + ["404"]
# Long enough for Playwright's fill to give up on a field it would wait for; short for the test.
TIMEOUT_MS = 300
STATE = """() => ({
    values: [...document.querySelectorAll("input, textarea")].map(e => e.value),
    editable: document.querySelector('[bid="7"]').textContent,
    focused: document.activeElement && document.activeElement.getAttribute("bid"),
    selection: document.activeElement && "selectionStart" in document.activeElement
        ? [document.activeElement.selectionStart, document.activeElement.selectionEnd] : null,
    seen: window.seen,
})"""


@pytest.fixture(scope="module")
def page() -> Iterator[pw.Page]:
    playwright_calls.install()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), args=list(CHROMIUM_FLAGS))
        try:
            yield browser.new_page()
        finally:
            browser.close()


def _playwrights_fill(page: pw.Page, element_id: str, text: str, timeout_ms: int) -> None:
    target = locate(page, element_id)
    _require_editable(target, element_id)
    target.fill(text, timeout=timeout_ms)


def _outcome(page: pw.Page, fill: Callable[[pw.Page, str, str, int], None], element_id: str,
             text: str) -> dict[str, Any]:
    """What filling the element on a fresh copy of the page did."""
    page.set_content(PAGE)
    try:
        fill(page, element_id, text, TIMEOUT_MS)
        result = "filled"
    except ActionError as refused:
        result = f"refused: {refused}"
    except pw.Error as error:  # Playwright's own refusal (or its wait, given up)
        result = "playwright: " + str(error).split(":")[0].split("\n")[0]
    return {"result": result, **page.evaluate(STATE)}


@pytest.mark.parametrize("text", ["new text", ""])
@pytest.mark.parametrize("element_id", IDS)
def test_fill_does_what_playwrights_fill_does(page: pw.Page, element_id: str, text: str) -> None:
    expected = _outcome(page, _playwrights_fill, element_id, text)
    assert _outcome(page, fill_field, element_id, text) == expected


def test_plain_fields_are_filled(page: pw.Page) -> None:
    for element_id in ("1", "2", "13", "16", "17"):
        assert _outcome(page, fill_field, element_id, "new text")["result"] == "filled"
    page.set_content(PAGE)
    fill_field(page, "28", "new text", TIMEOUT_MS)
    assert page.locator('[bid="28"]').input_value() == "new text"
