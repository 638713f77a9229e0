"""Fake vendor servers: for the tests, the demo and anyone trying the tap without credentials."""
