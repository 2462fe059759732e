"""lightd benchmarks: what the fleet costs, measured side by side against its limits.

Run from the repository root::

    uv run python -m bench [--quick] [--json PATH] [--profile]

Every figure is a ratio or a distribution measured in the same run as its baseline, so the
table means the same on a fast or a slow machine; see ``docs/benchmarks.md``.
"""

__all__: list[str] = []
