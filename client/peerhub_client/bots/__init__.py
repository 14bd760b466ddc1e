"""Ready-made server-side peers: the echo bot and the file-drop bot."""
