"""peerhub: a PeerJS-compatible PeerServer on Django Channels."""
