"""Trades -> bars (bars.py) -> indicators (indicators.py), ML features (features.py) and data-quality checks
(quality.py), decided per batch by pipeline.py: pure logic that imports only core and the standard library;
time comes from trade event times and explicit `now_ns` arguments, never from a clock read here. Around it,
the processor service does the I/O (service.py, warm_up.py, reporting.py: bus, store, cache, metrics)."""
