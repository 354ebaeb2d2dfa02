"""Seeded generators of the demo data and of simulated multi-site projects."""
