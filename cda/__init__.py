"""cda: Company Data Automation — the settings and the command line that tie the packages together."""
