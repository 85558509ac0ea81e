"""A client of a running agentbox server: its HTTP routes, and `agentbox exec` on a terminal."""
