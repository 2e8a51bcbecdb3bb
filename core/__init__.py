"""The ground floor: settings, errors, retry, the worker loop, paths, signals, identifiers and the prompt
contract. Everything stands on it; it imports no feature."""
