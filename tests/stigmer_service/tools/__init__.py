"""Tests of the tools an agent can call: MCP servers over stdio and streamable HTTP."""
