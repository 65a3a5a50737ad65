"""The "fast at a million leads" benchmark: data generator, loader, query mix, runners, report.

Not part of the package and never run by the test suite; see bench/README.md.
"""
