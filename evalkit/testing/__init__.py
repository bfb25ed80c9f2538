"""Test doubles for evalkit's tests and benchmarks, such as a fake OpenAI-compatible server."""
