"""Peer presence: nodes that announce, welcome, heartbeat and leave, and decide whom to believe.

* :mod:`~hereabouts.peers.node` — the asyncio runtime (``async with Node(config) as node``);
* :mod:`~hereabouts.peers.ingest` — the edge: bytes in, verified and admitted events out;
* :mod:`~hereabouts.peers.keyring` — names and the keys that hold them;
* :mod:`~hereabouts.peers.metrics` — the node's Prometheus view.

The protocol decisions themselves are sans-I/O and live in :mod:`hereabouts.core`. This
package imports nothing on its own, so that light commands (``hereabouts network``) do not
load the runtime.
"""
