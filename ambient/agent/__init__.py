"""The background agent: live encounters over a loopback WebSocket, notes drafted on stop."""
