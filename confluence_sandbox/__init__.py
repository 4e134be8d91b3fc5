"""Local Confluence and Unique emulators: what tests, benchmarks and the sandbox demo talk to."""
