"""Trust: scores earned from measured outcomes, levels and the gates they open."""
