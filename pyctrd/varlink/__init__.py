"""The Varlink front end: io.pyctrd.Container and io.pyctrd.Image over a unix socket.

A thin twin of pyctrd/bus: each method is one pyctrd.ops operation (authz.py
maps them), decoded from Varlink, authorized through the shared Authority,
run through pyctrd.ops.operations.Operations and encoded back. It imports
nothing of pyctrd.bus or dbus_fast, so it runs without them.
varlink/*.varlink in the repository are its interface definitions (checked
against the live service).
"""
