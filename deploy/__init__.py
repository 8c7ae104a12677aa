"""Deployment files; the Python here generates some of them (the Grafana dashboard)."""
