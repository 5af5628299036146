"""Oracle back-ends for the `ask_oracle` tool.

An oracle is a callable `(question, goal, observation_text, hints) -> str`
(`engine.episode.Oracle`). The server operator picks the back-end in the settings
(`OracleSettings`: `SAFEBROWSE_ORACLE` or `mode` under `[oracle]`: `hints`, `llm`
or `none`); the agent cannot. An oracle is
given only what the agent already sees (the goal and the current page) plus the
task's hints: never a reward, a validator verdict or a success flag. As a
second line, every answer passes through `filter_answer`, which drops sentences
that talk about rewards or success anyway.

A back-end that fails raises `OracleUnavailableError`; the episode then answers
that the oracle is unavailable and does not charge the call.

- `HintsOracle` answers from the task's hints (and, for MiniWoB++, the hints in
  `tasks.custom.miniwob_hints`), picking the hint that shares most words with the
  question, plus a pointer to the elements on the page that the goal mentions.
- `LLMOracle` asks any OpenAI-compatible chat endpoint
  (`POST {base}/v1/chat/completions`) with the goal, the page and the question.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.oracle_desk import Oracle, OracleUnavailableError
from tasks.registry import TaskSpec

logger = logging.getLogger(__name__)

OracleFactory = Callable[[TaskSpec], Oracle | None]

MAX_ANSWER_CHARS = 1_200
MAX_PAGE_CHARS = 12_000
REFUSAL = "I can only give hints about the page and the goal; continue from the observation."

# Sentences that speak of the judging side are dropped from every answer.
_JUDGING = re.compile(
    r"\b(rewards?|rewarded|score[sd]?|scoring|validat(?:or|ion|ed|e)s?|verdicts?|success(?:ful(?:ly)?)?|"
    r"succeed(?:s|ed)?|fail(?:s|ed|ure)?|pass(?:es|ed)? the (?:task|test)|"
    r"task (?:is )?(?:complete|completed|done|solved)|"
    r"episode (?:is )?(?:over|done|ended))\b",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[a-z0-9][a-z0-9'-]+")
_STOPWORDS = frozenset(
    "the a an and or of to in on at for with by from is are was were be been it its this that these those "
    "what which who how where when why do does did can could should would will i me my you your we our they "
    "them there here then than so if not no yes into onto about please help need want get got use using page".split()
)


def filter_answer(text: str, max_chars: int = MAX_ANSWER_CHARS) -> str:
    """Drop every sentence mentioning rewards, scores, validation or success; cap the length."""
    kept = [s.strip() for s in _SENTENCE.split(text or "") if s.strip() and not _JUDGING.search(s)]
    answer = " ".join(kept).strip()
    if len(answer) > max_chars:
        answer = answer[: max_chars - 3].rstrip() + "..."
    return answer or REFUSAL


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 2}


class HintsOracle:
    """Answers from the task's hints. Stateful per episode: repeated questions get new hints."""

    def __init__(self, extra_hints: tuple[str, ...] = ()) -> None:
        self.extra_hints = tuple(extra_hints)
        self._given: list[str] = []

    def __call__(self, question: str, goal: str, observation_text: str, hints: tuple[str, ...]) -> str:
        pool = list(dict.fromkeys((*hints, *self.extra_hints)))
        parts: list[str] = []
        hint = self._pick(question, pool)
        if hint:
            parts.append(hint)
        parts.append(self._pointer(goal, observation_text))
        return filter_answer(" ".join(p for p in parts if p))

    def _pick(self, question: str, pool: list[str]) -> str | None:
        if not pool:
            return None
        asked = _words(question)
        scored = sorted(((len(asked & _words(h)), -i, h) for i, h in enumerate(pool)), reverse=True)
        best_score, _, best = scored[0]
        if best_score == 0 or best in self._given:
            fresh = [h for h in pool if h not in self._given]
            best = fresh[0] if fresh else pool[len(self._given) % len(pool)]
        self._given.append(best)
        return best

    @staticmethod
    def _pointer(goal: str, observation_text: str) -> str:
        """A generic hint from the goal: which elements on the page mention its words."""
        lines = [line.strip() for line in observation_text.splitlines()]
        lines = [line for line in lines if line.startswith("[") and "(offscreen)" not in line]
        matches: list[str] = []
        # The goal's quoted values first (the names to look for), then any of its words.
        for wanted in (_words(" ".join(re.findall(r'"([^"]+)"', goal))), _words(goal)):
            matches = [line[:120] for line in lines if wanted & _words(line)][:4]
            if matches:
                break
        if not matches:
            return "Re-read the goal and look for elements whose text matches its words; scroll if nothing fits."
        return "Elements on this page that mention words of the goal: " + "; ".join(matches) + "."


class LLMOracle:
    """Asks an OpenAI-compatible chat endpoint for a short hint."""

    SYSTEM_PROMPT = (
        "You give short hints to an agent that uses a web page through tools (click, fill, select_option, "
        "press, scroll, tab_focus, send_message). You see its goal, the current page and its question. "
        "You do not know how the agent will be judged, so never mention rewards, scores, success or failure. "
        "Answer in at most three sentences, refer to elements by their [id], and never invent elements."
    )

    def __init__(self, base_url: str, model: str, timeout_s: float, api_key: str | None = None,
                 client: httpx.Client | None = None) -> None:
        self.endpoint = chat_endpoint(base_url)
        self.model = model
        self.timeout_s = timeout_s
        self.api_key = api_key
        self._client = client

    def __call__(self, question: str, goal: str, observation_text: str, hints: tuple[str, ...]) -> str:
        hint_lines = "\n".join(f"- {h}" for h in hints) or "- (none)"
        page = observation_text[:MAX_PAGE_CHARS]
        payload = {
            "model": self.model,
            "temperature": 0.2,
            "max_tokens": 300,
            "messages": [
                {"role": "system", "content": self.SYSTEM_PROMPT},
                {"role": "user", "content": (
                    f"Goal:\n{goal}\n\nHints from the task author:\n{hint_lines}\n\n"
                    f"Current page:\n{page}\n\nQuestion:\n{question}"
                )},
            ],
        }
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            client = self._client or _shared_client()
            response = client.post(self.endpoint, json=payload, headers=headers, timeout=self.timeout_s)
            response.raise_for_status()
            content = response.json()["choices"][0]["message"]["content"]
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as error:
            logger.warning("oracle endpoint %s failed: %s: %s", self.endpoint, type(error).__name__, error)
            raise OracleUnavailableError(f"{type(error).__name__}: {error}") from error
        if not isinstance(content, str) or not content.strip():
            raise OracleUnavailableError("the endpoint returned an empty answer")
        return filter_answer(content)


def chat_endpoint(base_url: str) -> str:
    """`http://host:8080`, `http://host:8080/` and `http://host:8080/v1` all mean the same endpoint."""
    base = base_url.strip().rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    return base + "/v1/chat/completions"


_client_lock = threading.Lock()
_client: httpx.Client | None = None


def _shared_client() -> httpx.Client:
    """One pooled client for every episode's oracle; httpx clients are thread-safe."""
    global _client
    with _client_lock:
        if _client is None:
            _client = httpx.Client(follow_redirects=False)
        return _client


class OracleSettings(BaseModel):
    """The operator's choice of oracle back-end: a plain model, filled by `safebrowse.settings`."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["hints", "llm", "none"] = "hints"
    url: str | None = Field(default=None, description="Base URL of an OpenAI-compatible server (llm mode).")
    model: str = Field(default="default", description="Model name sent to the endpoint.")
    timeout_s: float = Field(default=20.0, gt=0, le=300)
    api_key: str | None = Field(default=None, repr=False)

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_in_any_case(cls, value: object) -> object:
        """`SAFEBROWSE_ORACLE=LLM` has always meant `llm`."""
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _url_for_llm(self) -> OracleSettings:
        if self.mode == "llm" and not self.url:
            raise ValueError("the llm oracle needs SAFEBROWSE_ORACLE_URL (`url` under [oracle]), "
                             "an OpenAI-compatible base URL")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"the oracle URL must be an http(s) URL, got {self.url!r}")
        return self


def extra_hints_for(spec: TaskSpec) -> tuple[str, ...]:
    """Hints kept outside the spec: the MiniWoB++ ones, whose specs come from BrowserGym."""
    from tasks.custom.miniwob_hints import MINIWOB_HINTS

    return MINIWOB_HINTS.get(spec.id, ())


def build_oracle_factory(settings: OracleSettings) -> OracleFactory:
    """`factory(spec)` gives each new episode its own oracle, or None when the operator chose none."""
    if settings.mode == "none":
        return lambda spec: None
    if settings.mode == "hints":
        return lambda spec: HintsOracle(extra_hints_for(spec))

    def llm_factory(spec: TaskSpec) -> Oracle:
        oracle = LLMOracle(settings.url or "", settings.model, settings.timeout_s, settings.api_key)
        extra = extra_hints_for(spec)
        if not extra:
            return oracle
        return lambda question, goal, page, hints: oracle(question, goal, page, (*hints, *extra))

    return llm_factory


__all__ = [
    "HintsOracle",
    "LLMOracle",
    "OracleFactory",
    "OracleSettings",
    "OracleUnavailableError",
    "REFUSAL",
    "build_oracle_factory",
    "chat_endpoint",
    "filter_answer",
]
