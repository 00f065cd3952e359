"""The Varlink front end: io.pyctrd.Container and io.pyctrd.Image over a unix socket.

Beside D-Bus, it drives the same core Engine; varlink/*.varlink in the
repository are its interface definitions (checked against the live service).
"""
