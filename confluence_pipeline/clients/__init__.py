"""HTTP clients for the remote systems (Confluence, Unique, Zitadel) and the transport they share; no Dagster."""
