"""The REST store and artifact repository: evalkit's client side of an evalkit tracking server."""
