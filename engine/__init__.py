"""The room behind both doors: browser workers, episodes, actions and observations.

Nothing in this package's top level imports the reward rubric (`engine.reward`);
only the trainer door (`control_api`) does.
"""
