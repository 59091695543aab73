"""Models: loading by name or path, offline tiny models, and (later) the value head."""
