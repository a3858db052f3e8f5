"""The store reads the proto-JSON documents the API wrote into typed records, and back to protobuf."""

from __future__ import annotations

import datetime

from ai.stigmer.agentic.agent.v1 import spec_pb2 as agent_spec_pb2
from ai.stigmer.agentic.agentexecution.v1 import spec_pb2

from backend.stigmer_service import convert
from backend.stigmer_service.store import documents
from backend.stigmer_service.store.records import CallerRef, ModelOptions


def test_a_caller_document_reads_into_a_caller_ref_and_back() -> None:
    info = spec_pb2.CallerInfo(
        workflow_id="wf", run_id="run", activity_id="7", namespace="ns", task_queue="q"
    )
    ref = documents.caller(convert.to_json(info))
    assert ref == CallerRef("wf", "run", "7", "ns", "q")
    assert convert.caller_to_proto(ref) == info
    # No caller: every field empty (the document is {}).
    assert documents.caller(convert.to_json(spec_pb2.CallerInfo())) == CallerRef()
    assert convert.caller_to_proto(CallerRef()) == spec_pb2.CallerInfo()


def test_model_options_read_with_durations_as_timedelta() -> None:
    spec = agent_spec_pb2.AgentSpec(
        model="openai/gpt",
        instructions="be brief",
        model_options=agent_spec_pb2.ModelOptions(
            temperature=0.0, max_tokens=64, top_p=0.5, base_url="http://x", api_key_env="KEY"
        ),
    )
    spec.model_options.timeout.FromMilliseconds(1500)
    document = convert.to_json(spec)
    assert document["modelOptions"]["timeout"] == "1.500s"
    assert documents.model_options(document) == ModelOptions(
        temperature=0.0,
        max_tokens=64,
        top_p=0.5,
        timeout=datetime.timedelta(seconds=1.5),
    )
    assert (documents.model(document), documents.instructions(document)) == (
        "openai/gpt",
        "be brief",
    )
    # Nothing set: the provider's defaults.
    assert documents.model_options({}) == ModelOptions()
    assert documents.model({}) == documents.instructions({}) == ""


def test_an_execution_config_document_sets_model_and_temperature() -> None:
    config = spec_pb2.ExecutionConfig(model_name="offline/echo", temperature=0.0)
    document = convert.to_json(config)
    assert documents.config_model(document) == "offline/echo"
    assert documents.config_temperature(document) == 0.0  # Set, though zero.
    assert documents.config_temperature({}) is None
