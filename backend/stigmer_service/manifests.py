"""Kubernetes-style YAML manifests (`kind: Agent`) to Agent protos."""

from __future__ import annotations

from typing import Any

import yaml
from ai.stigmer.agentic.agent.v1 import api_pb2
from google.protobuf import json_format

API_VERSION = "agentic.stigmer.ai/v1"


class ManifestError(ValueError):
    pass


def parse_agents(text: str) -> list[api_pb2.Agent]:
    """Every document of the file, in order; each must be an Agent of our API version."""
    agents: list[api_pb2.Agent] = []
    for index, document in enumerate(yaml.safe_load_all(text)):
        if document is None:
            continue
        if not isinstance(document, dict):
            raise ManifestError(f"document {index}: not a mapping")
        if document.get("apiVersion") != API_VERSION:
            raise ManifestError(f"document {index}: apiVersion must be {API_VERSION}")
        if document.get("kind") != "Agent":
            raise ManifestError(f"document {index}: kind must be Agent")
        body: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": "Agent",
            "metadata": document.get("metadata") or {},
            "spec": document.get("spec") or {},
        }
        try:
            agents.append(json_format.ParseDict(body, api_pb2.Agent()))
        except json_format.ParseError as error:
            raise ManifestError(f"document {index}: {error}") from error
    return agents
