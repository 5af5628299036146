"""What a safebrowse environment raises to TRL, worded for the model or the operator."""

from __future__ import annotations


class ToolCallError(Exception):
    """The door answered a tool call with an error; its text is what the agent would read."""


class ResetError(RuntimeError):
    """`reset` could not start an episode: the row names no task the server has, or the server
    or the episode's door cannot be reached. The message says which."""


__all__ = ["ResetError", "ToolCallError"]
