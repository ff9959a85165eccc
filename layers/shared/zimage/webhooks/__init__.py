"""Webhooks: which URLs may receive them, and delivering one, signed."""
