"""The original connector's HTTP endpoints (/sync, /content, /reset), served by launching Dagster runs."""
