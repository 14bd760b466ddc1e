"""``python -m bench``: peerhub against peerjs-server 1.0.2 under the same load.

The load generator speaks the PeerJS websocket protocol over raw asyncio sockets
(:mod:`bench.wsproto`, :mod:`bench.peers`) so that it stays cheaper than the servers it
drives; the scenarios (:mod:`bench.scenarios`) run against servers started by
:mod:`bench.servers`, and :mod:`bench.report` prints one table with ratios.
"""
