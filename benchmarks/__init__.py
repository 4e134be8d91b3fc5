"""Benchmarks of the connector against the local emulators (run them as `python -m benchmarks.<name>`)."""
