"""`make bench`: the measurements (run.py), their report (report.py, from report.md), the
Job Poller baseline it runs beside the service, and the last results (results.json)."""
