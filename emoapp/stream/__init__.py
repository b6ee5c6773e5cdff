"""The local WebSocket stream of estimates, for another program on this machine
(:mod:`.server`)."""
