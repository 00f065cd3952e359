"""pyctrd: OCI containers as D-Bus objects."""

__version__ = "0.1.0"
