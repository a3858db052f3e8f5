"""A tool's answer as the bounded text a model reads: text kept, other content summarised."""

from __future__ import annotations

import base64
import json

from mcp import types as mcp_types

# What a tool may put into the conversation (and into the execution's status): a model's context
# is the real limit, and one tool must not fill the store.
MAX_TEXT_CHARS = 64_000


def result_text(result: mcp_types.CallToolResult) -> str:
    """Text content joined by blank lines; structured content when there is no text."""
    parts = [_part(block) for block in result.content]
    if not any(parts) and result.structured_content is not None:
        parts = [json.dumps(result.structured_content, sort_keys=True, default=str)]
    return bounded("\n\n".join(part for part in parts if part))


def bounded(text: str) -> str:
    if len(text) <= MAX_TEXT_CHARS:
        return text
    cut = len(text) - MAX_TEXT_CHARS
    return f"{text[:MAX_TEXT_CHARS]}\n[... {cut} more characters cut]"


def _part(block: mcp_types.ContentBlock) -> str:
    if isinstance(block, mcp_types.TextContent):
        return block.text
    if isinstance(block, mcp_types.ImageContent | mcp_types.AudioContent):
        return f"[{block.type}: {block.mime_type}, {_decoded_size(block.data)} bytes]"
    if isinstance(block, mcp_types.EmbeddedResource):
        resource = block.resource
        if isinstance(resource, mcp_types.TextResourceContents):
            return resource.text
        return f"[resource {resource.uri}: {resource.mime_type or 'binary'}]"
    if isinstance(block, mcp_types.ResourceLink):
        return f"[resource link {block.uri}: {block.name}]"
    return f"[{type(block).__name__}]"


def _decoded_size(data: str) -> int:
    try:
        return len(base64.b64decode(data, validate=True))
    except ValueError:
        return len(data)
