"""Fault drills: the real code paths with a fault injected, counting what was lost (RELIABILITY.md)."""
