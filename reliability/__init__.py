"""The reliability catalogue (scenarios.py) and the report `make reliability` writes (report.py)."""
