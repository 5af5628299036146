"""Sign in through a form that checks its fields and answers with errors.

The credentials live only here: the page sends what was typed through
`safebrowseCall("login", ...)` and shows whatever error this task answers.
Three wrong attempts lock the account, which ends the episode as a failure.
"""

from __future__ import annotations

import random
from typing import Any

import playwright.sync_api as pw

from tasks.custom import CustomTask, Verdict, normalise
from tasks.custom.words import WORDS, password, person

MAX_ATTEMPTS = 3
WORKSPACES = ("north-ops", "south-sales", "east-research", "west-support", "central-finance")


class LoginForm(CustomTask):
    name = "login-form"
    description = "Sign in through a form with field checks, error messages and an attempt limit."
    variants = ("username", "email")
    hints = (
        "Fill every field of the sign-in form exactly as written in the goal, then press the sign-in button.",
        "If an error appears under a field, fix that field and submit again; errors say what is wrong.",
        "Only a limited number of wrong attempts is allowed, so check the values before submitting.",
        "On harder pages there is also a sign-up form; use the sign-in form only.",
    )

    def build(self, rng: random.Random) -> None:
        first, last = person(rng)
        self.username = f"{first.lower()}.{last.lower()}{rng.randint(2, 99)}"
        self.email = f"{first.lower()}.{last.lower()}@{rng.choice(WORDS)}.example"
        self.password = password(rng)
        self.login_id = self.username if self.variant == "username" else self.email
        self.workspace = rng.choice(WORKSPACES) if self.difficulty != "easy" else None
        self.remember = rng.choice((True, False)) if self.difficulty == "hard" else None
        self.attempts = 0
        self.signed_in: dict[str, Any] | None = None
        self.signed_up = False

    def goal(self) -> str:
        field = "username" if self.variant == "username" else "email address"
        text = f'Sign in with the {field} "{self.login_id}" and the password "{self.password}".'
        if self.workspace:
            text += f' Choose the workspace "{self.workspace}".'
        if self.remember is True:
            text += ' Tick "Keep me signed in".'
        elif self.remember is False:
            text += ' Leave "Keep me signed in" unticked.'
        return text

    def page_data(self) -> dict[str, Any]:
        return {
            "field": self.variant,
            "workspaces": list(WORKSPACES) if self.workspace else [],
            "remember": self.remember is not None,
            "signup": self.difficulty == "hard",
            "maxAttempts": MAX_ATTEMPTS,
        }

    def handle(self, call: str, data: dict[str, Any]) -> Any:
        if call == "signup":
            self.signed_up = True
            return {"ok": True, "message": "Account created. Check your inbox to confirm it."}
        if call != "login":
            return {"ok": False, "error": "Unknown request."}
        if self.attempts >= MAX_ATTEMPTS:
            return {"ok": False, "error": "This account is locked after too many failed attempts."}
        login_ok = normalise(str(data.get("login", ""))) == self.login_id.lower()
        password_ok = str(data.get("password", "")) == self.password
        workspace_ok = self.workspace is None or data.get("workspace") == self.workspace
        if login_ok and password_ok and workspace_ok:
            self.signed_in = dict(data)
            return {"ok": True, "name": self.username}
        self.attempts += 1
        left = MAX_ATTEMPTS - self.attempts
        if left <= 0:
            return {"ok": False, "error": "This account is locked after too many failed attempts."}
        reason = ("You have no access to that workspace." if login_ok and password_ok
                  else f"Incorrect {'username' if self.variant == 'username' else 'email'} or password.")
        return {"ok": False, "error": f"{reason} {left} attempt{'s' if left != 1 else ''} left."}

    def judge(self, page: pw.Page, chat_messages: list[dict[str, Any]]) -> Verdict:
        if self.signed_up:
            return Verdict.failure("used the sign-up form instead of signing in")
        if self.signed_in is not None:
            if self.remember is not None and bool(self.signed_in.get("remember")) != self.remember:
                return Verdict.failure("signed in with the wrong 'keep me signed in' choice")
            return Verdict.success("signed in")
        if self.attempts >= MAX_ATTEMPTS:
            return Verdict.failure("account locked after too many wrong attempts")
        return Verdict.pending()

    def partial_progress(self, page: pw.Page) -> float:
        values = page.evaluate(
            """() => {
                const v = (id) => { const e = document.getElementById(id); return e ? e.value : ""; };
                const r = document.getElementById("remember");
                return {login: v("login"), password: v("password"), workspace: v("workspace"),
                        remember: r ? r.checked : null};
            }"""
        )
        checks = [normalise(values["login"]) == self.login_id.lower(), values["password"] == self.password]
        if self.workspace:
            checks.append(values["workspace"] == self.workspace)
        if self.remember is not None:
            checks.append(values["remember"] == self.remember)
        return 0.9 * sum(checks) / len(checks)
