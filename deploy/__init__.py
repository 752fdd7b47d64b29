"""Deployment manifests and the generator that keeps their generated parts in step with the sources."""
