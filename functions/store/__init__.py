"""DynamoDB access for graphs, runs, node records, events and offloaded outputs (one table)."""
