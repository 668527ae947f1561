"""Benchmarks of the engine process alone (no HTTP, no decode)."""
