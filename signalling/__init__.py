"""The PeerServer: PeerJS signalling over websockets and HTTP."""
