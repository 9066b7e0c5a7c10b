"""Pure processing logic: trades -> bars (bars.py) -> indicators (indicators.py), ML features
(features.py) and data-quality checks (quality.py). Imports only core and the standard library;
time comes from trade event times and explicit `now_ns` arguments, never from a clock read here."""
