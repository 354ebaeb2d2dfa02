"""The results summary of a run (Markdown and HTML)."""
