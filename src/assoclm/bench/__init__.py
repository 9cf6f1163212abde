"""Benchmark suites. Each writes a JSON result (commit, machine, command) and a PNG plot."""
