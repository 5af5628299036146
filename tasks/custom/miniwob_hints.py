"""Hints for common MiniWoB++ tasks, for the hints oracle.

MiniWoB++ specs come from BrowserGym and declare no hints of their own; these
say how the page works, never what the answer is.
"""

from __future__ import annotations

MINIWOB_HINTS: dict[str, tuple[str, ...]] = {
    "miniwob.click-test": (
        "There is a single button on the page; click it.",
    ),
    "miniwob.click-button": (
        "Several buttons are shown; click the one whose text is the word quoted in the goal.",
        "Button texts are short and can look alike; compare the whole word.",
    ),
    "miniwob.click-link": (
        "The links are words inside a paragraph; click the link whose text matches the goal.",
    ),
    "miniwob.enter-text": (
        "Fill the text field with the exact text from the goal, then click Submit.",
        "Case and spacing matter; copy the text exactly.",
    ),
    "miniwob.enter-password": (
        "There are two password fields: type the same password in both, then click Submit.",
        "Password fields are masked in the observation; that is expected.",
    ),
    "miniwob.focus-text": (
        "Focusing is enough: use the focus action (or click) on the text field; nothing needs to be typed.",
    ),
    "miniwob.click-checkboxes": (
        "Tick exactly the checkboxes whose labels are listed in the goal and leave the others unticked.",
        "A checkbox's checked attribute tells whether it is ticked; click Submit when the set is right.",
    ),
    "miniwob.choose-list": (
        "Use select_option on the drop-down list with the option text from the goal, then click Submit.",
    ),
    "miniwob.login-user": (
        "Fill the username field and the password field with the values from the goal, then click Login.",
    ),
    "miniwob.click-dialog": (
        "A dialog is open; close it with its close button (often an x in the dialog's title bar).",
    ),
    "miniwob.use-autocomplete": (
        "Type the first letters into the field; a suggestion list appears below it.",
        "Click the suggestion that matches the goal (or finish typing the full word), then click Submit.",
    ),
    "miniwob.click-tab": (
        "The tabs are links at the top of a panel; click the tab whose label is in the goal.",
    ),
    "miniwob.click-tab-2": (
        "First open the tab named in the goal, then click the link inside it.",
        "Links inside hidden tabs are not shown until their tab is opened.",
    ),
    "miniwob.click-option": (
        "Click the radio button whose label is in the goal, then click Submit.",
    ),
    "miniwob.search-engine": (
        "Type the search term into the search box and press Search.",
        "Results are split over several pages; the page numbers below the results lead to the others.",
        "Count results from the first one on page 1 when the goal asks for the n-th link.",
    ),
    "miniwob.email-inbox": (
        "Open the email from the sender named in the goal by clicking it in the inbox.",
        "Reply, forward, delete and star are icons or buttons inside the opened email.",
    ),
    "miniwob.navigate-tree": (
        "Folders open when clicked; expand folders until the named file or folder is visible, then click it.",
    ),
}
