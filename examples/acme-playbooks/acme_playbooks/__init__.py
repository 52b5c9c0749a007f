"""ACME's modelmedic playbooks: an example of a plugin package (see docs/playbooks.md)."""
