"""Durable per-recipient events and their live push over WebSockets."""
