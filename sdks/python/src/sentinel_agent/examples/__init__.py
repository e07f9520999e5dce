"""Example agents built only on the public SDK; each runs with ``python -m``."""
