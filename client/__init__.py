"""A Python PeerJS client on aiortc (PeerJS 1.5.x API and wire formats)."""
