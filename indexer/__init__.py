"""Indexer: writes versioned skill and job-title collections and publishes them atomically."""
