"""The Step Functions workflow's steps: poll, record a failure, sweep, and their timing."""
