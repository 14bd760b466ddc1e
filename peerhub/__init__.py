"""peerhub: a PeerJS-compatible PeerServer on Django Channels."""

#: The release (see CHANGELOG.md); reported by ``--version``, ``/healthz`` and ``/metrics``.
__version__ = "0.14.0"
