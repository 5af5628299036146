"""safebrowse on a Ray cluster: one front, browser nodes on Ray's nodes.

`safebrowse serve --ray ADDRESS` runs the **front** (`safebrowse.cluster_server`): the
control API, the episode book, the curriculum, metrics and the viewer, with its
episodes on **browser nodes**, Ray actors (`node.BrowserNode`) that each own Chromium
workers, a loopback asset server and an MCP door on their node's address.

- `settings`: the `[cluster]` settings section (no Ray import, so settings load anywhere).
- `outbox`: how a node hands each job's records to the front before its agent is answered.
- `node`: the browser node actor.
- `fleet`: the front's view of its nodes: placing nodes on Ray's nodes, picking one per
  episode, noticing joins and losses.
- `mirror`: the front's copy of a live episode, fed by its node's records.
- `front`: `ClusterRoom`, the room the control API drives in cluster mode.

Agents never talk to the front: an episode's `mcp_url` is its node's door. The front
talks to nodes only through Ray actor calls.
"""
