"""The node executor: runs one node (one tool call) for a Task state, records it, returns the new document.

``handler.lambda_handler`` is the Lambda entry point (Powertools wiring); ``node.NodeExecutor`` does the
work with injected store objects; ``tools/`` holds the tool registry. Kept import-light for cold starts.
"""
