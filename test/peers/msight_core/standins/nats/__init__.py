"""Import-only stand-in for nats-py: MSight imports it at module level; these tests use the Redis back end."""
