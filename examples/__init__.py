"""The demo company's own HTTP API (acme): a process of its own that the agents call like any company's
API, with faults on demand for the tests and the demo."""
