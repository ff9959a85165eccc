"""What the HTTP API serves: the request, the answers' models, starting a job."""
