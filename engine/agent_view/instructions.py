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
