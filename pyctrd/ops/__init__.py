"""The operations layer: what D-Bus, Varlink and pyctr share, declared once.

Each front end decodes its wire, calls an operation here and encodes the
answer; the polkit action and details of every operation, the option
schema, the error catalogue, the property tables and the bus names live in
this package and nowhere else. Nothing here imports dbus_fast or
asyncvarlink (only the polkit adapter, pyctrd.ops.polkit, speaks D-Bus), so
each front end loads without the other's library.
"""
