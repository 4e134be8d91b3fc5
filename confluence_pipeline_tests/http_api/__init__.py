"""The HTTP API: validation and settings units, the app against a scripted Dagster, the service over real sockets."""
