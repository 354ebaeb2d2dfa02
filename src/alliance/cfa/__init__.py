"""Confirmatory factor analysis stage: fits through the sem engine, tables and figures."""
