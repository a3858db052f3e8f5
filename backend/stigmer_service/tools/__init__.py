"""The tools an agent can call: for now, the tools of its MCP servers."""
