"""Faust agents: per-company automation jobs, the agent loop, tools, sessions, memory and the REST API."""
