"""Novita's async API: the client and the errors it raises."""
