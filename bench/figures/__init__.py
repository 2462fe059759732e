"""One module per group of figures; each returns :class:`bench.report.Figure` rows."""
