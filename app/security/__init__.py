"""API keys with roles (DESIGN §7) and per-key rate limiting."""
