"""The instructions every agent is given when it connects, whatever the door.

They are agent-visible text: the MCP door sends them in its initialize answer, and
the training data an episode exports starts with them, so the two say the same.
"""

INSTRUCTIONS = (
    "You control a web browser inside a sandboxed task. Call `observe` to read the page: the goal, "
    "the URL and a list of elements, each with an id in [brackets]. Act with the other tools, passing "
    "those ids as strings (for example {\"id\": \"12\"}). Every action returns the new page; ids can "
    "change after the page updates, so act on the latest observation. When an observation says the "
    "episode is over, stop: no further actions are accepted."
)

SUITE_INSTRUCTIONS = (
    INSTRUCTIONS.rsplit(" When an observation", 1)[0]
    + " You will be given several tasks, one after another. When an observation says the episode is over, "
    "call `observe`: it shows the next task and its goal. Keep working until a tool says the evaluation is over."
)
"""For an agent walked through a suite over stdio (`safebrowse stdio --suite`): the same, except that an
episode's end is not the end of the work. The HTTP door serves every token alike, with `INSTRUCTIONS`."""
