"""CanvasCraft benchmarks: each stage against its bare library baseline, measured in the same run.

Run with ``make bench`` (quick profile) or ``python -m bench.run --profile full``; writes docs/benchmarks.md.
Benchmarks are not tests: nothing here is collected by pytest and nothing here is imported by canvascraft/.
"""
