"""Item description: distributions, missingness, reliability, exploratory factor analysis."""
