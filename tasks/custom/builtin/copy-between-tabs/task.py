"""Copy a value from a second tab into a form on the first.

The form page links to a records page with `target="_blank"`, so the records
open in a new tab; the agent reads the value there, comes back with
`tab_focus`, and submits it. The expected value is drawn here and compared with
what the form sends through `safebrowseCall("submit", ...)`.
"""

from __future__ import annotations

import random
from typing import Any

import playwright.sync_api as pw

from tasks.custom import CustomTask, Verdict, normalise
from tasks.custom.words import DEPARTMENTS, FIRST_NAMES, LAST_NAMES, code

COLUMNS = {
    "order-number": ("Order number", "ORD-", 6, 0),
    "tracking-code": ("Tracking code", "TRK-", 2, 4),
    "invoice-id": ("Invoice ID", "INV-", 5, 0),
}


class CopyBetweenTabs(CustomTask):
    name = "copy-between-tabs"
    description = "Open a records page in a new tab, copy one value and submit it in the form on the first tab."
    variants = tuple(COLUMNS)
    hints = (
        "The link on the form page opens the records in a new tab; the new tab gets the focus.",
        "Read the value in the records table, then use tab_focus with index 0 to go back to the form.",
        "Type the value exactly as shown, including its prefix and dash, then submit the form.",
        "When several people share a name, the department tells them apart.",
    )

    def build(self, rng: random.Random) -> None:
        count = {"easy": 3, "medium": 8, "hard": 16}[self.difficulty]
        first_names = rng.sample(FIRST_NAMES, 4 if self.difficulty == "hard" else count)
        self.records: list[dict[str, str]] = []
        seen: set[tuple[str, str]] = set()
        while len(self.records) < count:
            person = f"{rng.choice(first_names)} {rng.choice(LAST_NAMES)}" if self.difficulty != "hard" \
                else f"{rng.choice(first_names)} {rng.choice(LAST_NAMES[:3])}"
            department = rng.choice(DEPARTMENTS)
            name_taken = any(r["name"] == person for r in self.records)
            if (person, department) in seen or (self.difficulty != "hard" and name_taken):
                continue
            seen.add((person, department))
            record = {"name": person, "department": department}
            for key, (_, prefix, digits, letters) in COLUMNS.items():
                record[key] = code(rng, prefix, digits, letters)
            self.records.append(record)
        self.target = rng.choice(self.records)
        if self.difficulty == "hard":
            # make sure the name alone is ambiguous
            twin = next((r for r in self.records if r is not self.target and r["name"] == self.target["name"]), None)
            if twin is None:
                other = next(r for r in self.records if r is not self.target)
                other["name"] = self.target["name"]
                if other["department"] == self.target["department"]:
                    other["department"] = next(d for d in DEPARTMENTS if d != self.target["department"])
        self.label = COLUMNS[self.variant][0]
        self.expected = self.target[self.variant]
        self.submissions: list[str] = []

    def goal(self) -> str:
        who = f'{self.target["name"]}'
        if self.difficulty == "hard":
            who += f' of the {self.target["department"]} department'
        return (f"Open the records page from the form, find the {self.label.lower()} of {who}, "
                f"and submit it in the form on the first tab.")

    def page_data(self) -> dict[str, Any]:
        return {"label": self.label, "column": self.variant, "records": self.records}

    def handle(self, call: str, data: dict[str, Any]) -> Any:
        if call != "submit":
            return {"ok": False, "error": "Unknown request."}
        value = str(data.get("value", ""))
        self.submissions.append(value)
        return {"ok": True, "message": "Thank you, your reference was submitted."}

    def judge(self, page: pw.Page, chat_messages: list[dict[str, Any]]) -> Verdict:
        if not self.submissions:
            return Verdict.pending()
        if normalise(self.submissions[0]) == normalise(self.expected):
            return Verdict.success("submitted the right value")
        return Verdict.failure("submitted a wrong value")

    def partial_progress(self, page: pw.Page) -> float:
        pages = page.context.pages
        score = 0.3 if any(p.url.startswith(self.url("records.html")) for p in pages) else 0.0
        form = next((p for p in pages if p.url.startswith(self.url("index.html"))), None)
        if form is not None and normalise(form.input_value("#reference")) == normalise(self.expected):
            score += 0.5
        return score
