"""The job: its record, its store, how clients see it, and its completion events."""
