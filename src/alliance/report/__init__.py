"""The results summary of a run (Markdown and HTML).

:mod:`~alliance.report.summary` is the stage entry of the workflow's ``summary`` rule: it reads
every stage's result files and writes ``results/summary.md`` and ``summary.html``;
:mod:`~alliance.report.docx` writes the summary's tables as a Word document
(``results/summary_tables.docx``).

May import: any module of the package, the other stages' entries included (it is the last
stage); nothing imports it but the CLI and the scripts.
"""
