"""Engines: what trains a method over rounds (batched in-process, per-client loop, central, popularity)."""
