"""Benchmarks of safebrowse, run on the machine at hand.

`python -m bench.loops` measures every loop shape a trainer runs, side by side with
BrowserGym's `BrowserEnv` in one run: episodes back to back (create, act, close, create
again at once), GRPO groups of 8 resets at once with a pause after each, and 1, 2 and 4
agents acting in parallel with the CPU each action costs by process. It prints the
targets the project holds itself to and whether this run met them.

`python -m bench.compare` plays the same MiniWoB++ episodes (same tasks, same
seeds, same scripted policy) through safebrowse's real doors (control API over
HTTP to reset, MCP over streamable HTTP to act) and through BrowserGym's
`BrowserEnv` called in-process, interleaved episode by episode so both sides
see the same load, and prints reset and step latencies, episodes per minute,
success rates and the BrowserGym/safebrowse ratios.

`python -m bench.concurrency` measures aggregate actions per second through
MCP with several episodes acting in parallel, the CPU each action costs by
process, and the resident memory each extra open episode costs.

`python -m bench.groups` resets groups of episodes of one task at once, as a
GRPO trainer does, and prints how long each group takes until every agent has
its first observation.

`python -m bench.cluster` runs the same agents on a Ray cluster started on this
machine (`safebrowse serve --ray`) and on a single server side by side: the step
median of each, the front's CPU per episode and per step, and actions per second
with one and two browser nodes (`docs/scaling.md` builds its capacity model on it).

They print their targets next to the numbers and say whether each was met;
nothing here asserts a speed, so a busy machine gives slow numbers, not
failures. `docs/performance.md` records a run and how to read it.
"""
