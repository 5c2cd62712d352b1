"""The Step Functions status-change function: terminal execution statuses into run records."""
