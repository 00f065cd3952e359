"""Container networking through podman's stack: netavark sets up bridges, veths,
addresses, NAT and port forwarding; aardvark-dns answers names. pyctrd makes
each container's network namespace (netns.py) and hands it to netavark."""
