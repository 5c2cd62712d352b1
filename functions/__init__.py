"""The Lambda functions of stepgraph and what only they need."""
