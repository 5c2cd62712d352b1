"""What a registered tool's own Lambda function runs: the bootstrap handler shipped in its zip."""
