"""HTTP API blueprints: parse, call a service, serialise."""
