"""A small MCP server for the demo and the tests: ticket lookup, comments, and a tool that fails."""
