"""Pure domain logic of the sync: no HTTP, no Dagster."""
