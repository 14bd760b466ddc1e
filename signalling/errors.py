"""Named exceptions of the signalling package.

- :class:`signalling.protocol.ProtocolError`: a client frame breaks the protocol.
- :class:`signalling.offline.QueueFull`: an offline queue is at its bound.
- :class:`ClusterUnavailable`: Redis could not be reached for an operation needing it.
"""


class ClusterUnavailable(Exception):
    """Redis could not be reached for an operation that needs it."""


class NodeDraining(ClusterUnavailable):
    """This node is shutting down and admits no new peers (they belong on another)."""
