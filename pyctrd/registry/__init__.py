"""Registries through skopeo (containers/image): references, transfers, credentials."""
