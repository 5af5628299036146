"""Attacks on the boundary, from the agent's side, through the real doors."""
