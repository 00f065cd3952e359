"""A user's own daemon: the user namespace it runs in (rootless mode)."""
