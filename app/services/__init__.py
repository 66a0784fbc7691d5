"""Use cases: commands, the one status-write path, the outbox relay, queries."""
