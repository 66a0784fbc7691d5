"""Celery workers and the node-side machinery they drive (container runtimes)."""
