"""The fault tier: hostile clients, faulty caches, shutdown under load."""
