"""A tool's answer as the text a model reads: what is kept, summarised and cut."""

from __future__ import annotations

import base64

from mcp import types

from backend.stigmer_service.tools import content


def test_text_is_joined_and_other_content_summarised() -> None:
    result = types.CallToolResult(
        content=[
            types.TextContent(text="first"),
            types.ImageContent(
                data=base64.b64encode(b"\x89PNG1234").decode(), mime_type="image/png"
            ),
            types.EmbeddedResource(
                resource=types.TextResourceContents(uri="file:///notes.txt", text="embedded text")
            ),
            types.EmbeddedResource(
                resource=types.BlobResourceContents(uri="file:///a.bin", blob="AAAA")
            ),
            types.ResourceLink(uri="file:///big.csv", name="big.csv"),
        ]
    )

    assert content.result_text(result).split("\n\n") == [
        "first",
        "[image: image/png, 8 bytes]",
        "embedded text",
        "[resource file:///a.bin: binary]",
        "[resource link file:///big.csv: big.csv]",
    ]


def test_structured_content_stands_in_for_missing_text() -> None:
    result = types.CallToolResult(content=[], structured_content={"open": 2, "closed": 1})

    assert content.result_text(result) == '{"closed": 1, "open": 2}'


def test_text_within_the_bound_is_untouched() -> None:
    text = "y" * content.MAX_TEXT_CHARS

    assert content.bounded(text) == text
    assert content.bounded(text + "z").endswith("\n[... 1 more characters cut]")
