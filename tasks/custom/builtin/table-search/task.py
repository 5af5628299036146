"""Find one person in a searchable, paginated directory and answer in the chat.

The answer goes back with `send_message`; `judge` reads the agent's chat
messages (role "assistant", after the goal) and compares them with the value
drawn here. The first answer counts.
"""

from __future__ import annotations

import random
import re
from typing import Any

import playwright.sync_api as pw

from tasks.custom import CustomTask, Verdict, normalise
from tasks.custom.words import CITIES, DEPARTMENTS, FIRST_NAMES, LAST_NAMES, phone

PAGE_SIZE = 10
COLUMN_LABELS = {"email": "email address", "phone": "phone number", "city": "office city"}


class TableSearch(CustomTask):
    name = "table-search"
    description = "Search a paginated staff directory and report one person's detail with send_message."
    variants = tuple(COLUMN_LABELS)
    hints = (
        "Type part of the name into the search box and press Search to narrow the table.",
        "The table shows ten rows per page; use Next and Previous to see more rows.",
        "Answer with send_message containing only the requested value, copied exactly.",
        "When a name appears more than once, the department column tells the people apart.",
    )

    def build(self, rng: random.Random) -> None:
        count = {"easy": 14, "medium": 45, "hard": 150}[self.difficulty]
        self.rows: list[dict[str, str]] = []
        names: set[tuple[str, str]] = set()
        while len(self.rows) < count:
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            department = rng.choice(DEPARTMENTS)
            if (f"{first} {last}", department) in names or (
                self.difficulty != "hard" and any(n == f"{first} {last}" for n, _ in names)
            ):
                continue
            names.add((f"{first} {last}", department))
            self.rows.append({
                "name": f"{first} {last}",
                "department": department,
                "email": f"{first.lower()}.{last.lower()}{len(self.rows)}@corp.example",
                "phone": phone(rng),
                "city": rng.choice(CITIES),
            })
        self.target = rng.choice(self.rows)
        if self.difficulty == "hard" and not any(
            r is not self.target and r["name"] == self.target["name"] for r in self.rows
        ):
            twin = dict(rng.choice([r for r in self.rows if r is not self.target]))
            twin["name"] = self.target["name"]
            twin["department"] = rng.choice([d for d in DEPARTMENTS if d != self.target["department"]])
            twin["city"] = rng.choice([c for c in CITIES if c != self.target["city"]])
            twin["email"] = twin["email"].replace("@", "x@")
            self.rows.insert(rng.randrange(len(self.rows)), twin)
        self.expected = self.target[self.variant]

    def goal(self) -> str:
        who = self.target["name"]
        if self.difficulty == "hard":
            who += f' from the {self.target["department"]} department'
        return (f"Find {who} in the staff directory and tell me their {COLUMN_LABELS[self.variant]}. "
                "Answer with send_message containing only the value.")

    def page_data(self) -> dict[str, Any]:
        return {"rows": self.rows, "pageSize": PAGE_SIZE}

    def _matches(self, answer: str) -> bool:
        if self.variant == "phone":
            digits = re.sub(r"\D", "", answer)
            return digits.endswith(re.sub(r"\D", "", self.expected)) and len(digits) <= len(
                re.sub(r"\D", "", self.expected)) + 3
        expected, given = normalise(self.expected), normalise(answer)
        return expected in re.split(r"[\s,;:()\"']+", given) or given == expected

    def judge(self, page: pw.Page, chat_messages: list[dict[str, Any]]) -> Verdict:
        answers = self.agent_messages(chat_messages)
        if not answers:
            return Verdict.pending()
        if self._matches(answers[0]):
            return Verdict.success("answered with the right value")
        return Verdict.failure("answered with a wrong value")

    def partial_progress(self, page: pw.Page) -> float:
        shown = page.evaluate(
            "() => Array.from(document.querySelectorAll('#rows tr')).map(r => r.innerText)"
        )
        target = [self.target["name"], self.target["department"]]
        return 0.5 if any(all(part in row for part in target) for row in shown) else 0.0
