"""The `cda` command line."""
