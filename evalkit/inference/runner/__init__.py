"""Runs a model over many rows concurrently: rate limits, retries, cache, budget, progress."""
