"""A2A interoperability: agent cards, the hub as an A2A gateway, and the execute API."""
