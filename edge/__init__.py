"""peerhub's edge: the asyncio server that owns the public port.

It serves the whole PeerJS protocol itself, as ASGI applications, and puts Django behind
it:

- ``{path}peerjs`` websocket upgrades run the PeerJS consumer on :class:`edge.websocket.
  WebSocket` (RFC 6455 framing from :mod:`peerhub.wsframes`);
- exact paths in the route table (:class:`edge.routes.Routes`: the PeerJS HTTP routes,
  health and metrics) run their ASGI application through :mod:`edge.asgi_http`;
- every other request is proxied to Django on stock daphne, listening on a private unix
  socket in the same process (:mod:`edge.upstream`).

One set of limits (:class:`edge.options.Limits`) stands in front of all three: head and
body size, head and body deadlines, connections and connect rate per address, the send
buffer. Nothing in this package imports Django: :mod:`peerhub.serve` wires it up.
"""
