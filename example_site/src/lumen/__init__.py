"""Lumen Queue: a small durable job queue (a made-up product for the example site)."""
