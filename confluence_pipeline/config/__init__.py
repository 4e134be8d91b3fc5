"""Configuration: the typed settings model, secrets and the scrubber, and what is read when the code location loads."""
