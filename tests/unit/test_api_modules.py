"""Every generated API module imports cleanly, the main messages survive the wire, and the
service's state numbers are the API's enum numbers."""

from __future__ import annotations

import importlib
import warnings

import pytest
from ai.stigmer.agentic.agent.v1 import api_pb2 as agent_api_pb2
from ai.stigmer.agentic.agent.v1 import spec_pb2 as agent_spec_pb2
from ai.stigmer.agentic.agentexecution.v1 import api_pb2, spec_pb2, status_pb2
from ai.stigmer.agentic.workflow.v1.tasks import agent_call_pb2
from ai.stigmer.commons.apiresource import metadata_pb2, reference_pb2
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor

from backend.stigmer_service import states
from tools.stubs import stubs

GENERATED_MODULES = sorted(
    path.removesuffix(".py").replace("/", ".")
    for path in stubs.generated_stubs()
    if path.endswith(".py")
)


def test_all_api_packages_are_generated() -> None:
    packages = {module.rsplit(".", 1)[0] for module in GENERATED_MODULES}
    assert packages == {
        "ai.stigmer.commons.apiresource",
        "ai.stigmer.agentic.agent.v1",
        "ai.stigmer.agentic.agentexecution.v1",
        "ai.stigmer.agentic.workflow.v1.tasks",
    }


@pytest.mark.parametrize("module", GENERATED_MODULES)
def test_generated_module_imports_without_warnings(module: str) -> None:
    # A gencode/runtime version mismatch shows up as a warning at import time.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(importlib.import_module(module))


def _execution() -> api_pb2.AgentExecution:
    execution = api_pb2.AgentExecution(
        api_version="agentic.stigmer.ai/v1",
        kind="AgentExecution",
        metadata=metadata_pb2.ApiResourceMetadata(
            id="aex-123", name="summarize", org="acme", labels={"team": "search"}
        ),
        spec=spec_pb2.AgentExecutionSpec(
            session_id="ses-1",
            agent_id="agt-1",
            message="Summarize the ticket.",
            execution_config=spec_pb2.ExecutionConfig(model_name="offline/echo", temperature=0.2),
            runtime_env={"API_KEY": spec_pb2.ExecutionValue(value="s3cret", is_secret=True)},
            callback_token=bytes(range(256)),
            idempotency_key="wf-1/run-1/act-1",
            caller=spec_pb2.CallerInfo(workflow_id="wf-1", run_id="run-1", activity_id="act-1"),
        ),
    )
    execution.spec.execution_config.timeout.FromSeconds(90)
    execution.status.phase = status_pb2.EXECUTION_PHASE_COMPLETED
    execution.status.messages.add(role=status_pb2.MESSAGE_ROLE_ASSISTANT, content="Done.")
    execution.status.output = "Done."
    execution.status.callback.token_present = True
    execution.status.callback.state = status_pb2.CALLBACK_STATE_DELIVERED
    return execution


def test_agent_execution_round_trips_binary_and_json() -> None:
    execution = _execution()
    from_wire = api_pb2.AgentExecution.FromString(execution.SerializeToString())
    assert from_wire == execution
    assert from_wire.spec.callback_token == bytes(range(256))
    from_json = json_format.Parse(json_format.MessageToJson(execution), api_pb2.AgentExecution())
    assert from_json == execution


def test_agent_execution_spec_keeps_the_original_wire_contract() -> None:
    # Go and Java clients of the original system send these numbers and types; changing any of
    # them breaks them on the wire (see CONTRIBUTING.md: API changes).
    descriptor = spec_pb2.AgentExecutionSpec.DESCRIPTOR
    field = descriptor.fields_by_name
    expected = {
        "session_id": (1, FieldDescriptor.TYPE_STRING, None),
        "agent_id": (2, FieldDescriptor.TYPE_STRING, None),
        "message": (3, FieldDescriptor.TYPE_STRING, None),
        "execution_config": (4, FieldDescriptor.TYPE_MESSAGE, "ExecutionConfig"),
        "runtime_env": (5, FieldDescriptor.TYPE_MESSAGE, "RuntimeEnvEntry"),
        "callback_token": (6, FieldDescriptor.TYPE_BYTES, None),
    }
    for name, (number, kind, message_name) in expected.items():
        assert field[name].number == number, name
        assert field[name].type == kind, name
        if message_name:
            message_type = field[name].message_type
            assert message_type is not None and message_type.name == message_name, name
    # runtime_env is map<string, ExecutionValue>.
    entry = field["runtime_env"].message_type
    assert entry is not None and entry.GetOptions().map_entry
    assert entry.fields_by_name["key"].type == FieldDescriptor.TYPE_STRING
    value_type = entry.fields_by_name["value"].message_type
    assert value_type is not None
    assert value_type.full_name == "ai.stigmer.agentic.agentexecution.v1.ExecutionValue"
    assert descriptor.full_name == "ai.stigmer.agentic.agentexecution.v1.AgentExecutionSpec"
    # Fields 1-6 are all the original had; ours may only add.
    assert {f.number for f in descriptor.fields} >= set(range(1, 7))


def test_agent_and_agent_call_config_round_trip() -> None:
    agent = agent_api_pb2.Agent(
        api_version="agentic.stigmer.ai/v1",
        kind="Agent",
        metadata=metadata_pb2.ApiResourceMetadata(name="Reviewer", slug="reviewer", org="acme"),
        spec=agent_spec_pb2.AgentSpec(
            instructions="Review code.",
            model="openai/gpt-4o-mini",
            model_options=agent_spec_pb2.ModelOptions(temperature=0.0, max_tokens=256),
        ),
    )
    assert agent_api_pb2.Agent.FromString(agent.SerializeToString()) == agent
    config = agent_call_pb2.AgentCallTaskConfig(
        agent="reviewer",
        scope=reference_pb2.API_RESOURCE_OWNER_SCOPE_ORGANIZATION,
        org="acme",
        message="${ .diff }",
        env={"REPO": "stigmer"},
    )
    config.config.model = "offline/echo"
    config.config.timeout.FromSeconds(600)
    assert agent_call_pb2.AgentCallTaskConfig.FromString(config.SerializeToString()) == config


def test_state_numbers_match_the_proto_enums() -> None:
    """The service's phase, role, callback-state and outcome numbers are the API's enum numbers."""
    assert states.PHASE_CANCELLED == status_pb2.EXECUTION_PHASE_CANCELLED
    assert states.PHASE_COMPLETED == status_pb2.EXECUTION_PHASE_COMPLETED
    assert states.PHASE_FAILED == status_pb2.EXECUTION_PHASE_FAILED
    assert states.PHASE_PENDING == status_pb2.EXECUTION_PHASE_PENDING
    assert states.PHASE_RUNNING == status_pb2.EXECUTION_PHASE_RUNNING
    assert states.ROLE_ASSISTANT == status_pb2.MESSAGE_ROLE_ASSISTANT
    assert states.ROLE_USER == status_pb2.MESSAGE_ROLE_USER
    assert states.CALLBACK_ALREADY_CLOSED == status_pb2.CALLBACK_STATE_ALREADY_CLOSED
    assert states.CALLBACK_DELIVERED == status_pb2.CALLBACK_STATE_DELIVERED
    assert states.CALLBACK_FAILED == status_pb2.CALLBACK_STATE_FAILED
    assert states.CALLBACK_NOT_REQUESTED == status_pb2.CALLBACK_STATE_NOT_REQUESTED
    assert states.CALLBACK_WAITING == status_pb2.CALLBACK_STATE_WAITING
    assert states.OUTCOME_CANCELLED == status_pb2.CALLBACK_OUTCOME_CANCELLED
    assert states.OUTCOME_COMPLETED == status_pb2.CALLBACK_OUTCOME_COMPLETED
    assert states.OUTCOME_FAILED == status_pb2.CALLBACK_OUTCOME_FAILED
