"""Documents copied from the Serverless Workflow specification (its `ctk/features/` conformance
scenarios and `examples/`), run through the real DslWorkflow on the dev server.

The only change to each document is the host: the petstore they call is the local HTTP server of
`scenarios.http_server`, with the same paths (`/v2/pet/{petId}`); long retry delays are shortened.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from backend.workflow_runner.dsl import errors
from tests.workflow_runner import scenarios
from tests.workflow_runner.scenarios import run_workflow

pytestmark = pytest.mark.timeout(90)

PETSTORE = "https://petstore.swagger.io"


def from_spec(text: str, server: scenarios.HttpServer) -> dict[str, Any]:
    return dict(yaml.safe_load(text.replace(PETSTORE, server.url)))


# ctk/features/data-flow.feature, "Output Filtering": URI template and a bare `output.as`.
OUTPUT_FILTERING = """
document:
  dsl: '1.0.3'
  namespace: default
  name: output-filtering
  version: '1.0.0'
do:
  - getPet:
      call: http
      with:
        method: get
        endpoint:
          uri: https://petstore.swagger.io/v2/pet/{petId} #simple interpolation, only possible with top level variables
      output:
        as: .id #filters the output of the http call, using only the id of the returned object
"""

# ctk/features/data-flow.feature, "Use Non-object Output".
NON_OBJECT_OUTPUT = """
document:
  dsl: '1.0.3'
  namespace: default
  name: non-object-output
  version: '1.0.0'
do:
  - getPetById1:
      call: http
      with:
        method: get
        endpoint:
          uri: https://petstore.swagger.io/v2/pet/{petId} #simple interpolation, only possible with top level variables
      output:
        as: .id
  - getPetById2:
      call: http
      with:
        method: get
        endpoint:
          uri: https://petstore.swagger.io/v2/pet/2
      output:
        as: '{ ids: [ $input, .id ] }'
"""

# ctk/features/data-flow.feature, "Input Filtering".
INPUT_FILTERING = """
document:
  dsl: '1.0.3'
  namespace: default
  name: output-filtering
  version: '1.0.0'
do:
  - setPlayerId:
      input:
        from: .user.claims.subject #filters the input of the task, using only the user's subject
      set:
        playerId: ${ . }
"""

# ctk/features/try.feature, "Try Handle Caught Error" (older error-type spelling), with the
# type as TYPE so the reference spelling is tested by the same document.
TRY_CATCH_404 = """
document:
  dsl: '1.0.3'
  namespace: default
  name: try-catch-404
  version: '1.0.0'
do:
  - tryGetPet:
      try:
        - getPet:
            call: http
            with:
              method: get
              endpoint:
                uri: https://petstore.swagger.io/v2/pet/getPetByName/{petName}
      catch:
        errors:
          with:
            type: TYPE
            status: 404
        as: err
        do:
          - setError:
              set:
                error: ${ $err }
"""

# examples/try-catch-retry-inline.yaml, retrying twice instead of 5 times, 50 ms apart.
TRY_CATCH_RETRY = """
document:
  dsl: '1.0.3'
  namespace: default
  name: try-catch-retry
  version: '0.1.0'
do:
  - tryGetPet:
      try:
        - getPet:
            call: http
            with:
              method: get
              endpoint: https://petstore.swagger.io/unavailable/{petId}
      catch:
        errors:
          with:
            type: https://serverlessworkflow.io/spec/1.0.0/errors/communication
            status: 503
        retry:
          delay:
            milliseconds: 50
          backoff:
            exponential: {}
          limit:
            attempt:
              count: 2
"""


async def test_output_filtering_expands_the_uri_template_and_filters_with_a_bare_expression(
    temporal_client: Client, task_queue: str
) -> None:
    with scenarios.http_server() as server:
        result, _ = await run_workflow(
            temporal_client, task_queue, from_spec(OUTPUT_FILTERING, server), {"petId": 1}
        )
        assert server.hits == {"/v2/pet/1": 1}
    assert result == 1


async def test_non_object_output(temporal_client: Client, task_queue: str) -> None:
    with scenarios.http_server() as server:
        result, _ = await run_workflow(
            temporal_client, task_queue, from_spec(NON_OBJECT_OUTPUT, server), {"petId": 1}
        )
    assert result == {"ids": [1, 2]}


async def test_input_filtering_with_a_bare_expression(
    temporal_client: Client, task_queue: str
) -> None:
    document = dict(yaml.safe_load(INPUT_FILTERING))
    workflow_input = {"user": {"claims": {"subject": "6AsnRgGEB0q2O7ux9JXFAw"}}}
    result, _ = await run_workflow(temporal_client, task_queue, document, workflow_input)
    assert result == {"playerId": "6AsnRgGEB0q2O7ux9JXFAw"}


@pytest.mark.parametrize(
    "error_type",
    [
        "https://serverlessworkflow.io/dsl/errors/types/communication",
        "https://serverlessworkflow.io/spec/1.0.0/errors/communication",
    ],
)
async def test_a_404_inside_try_is_caught_with_either_error_type_spelling_at_once(
    temporal_client: Client, task_queue: str, error_type: str
) -> None:
    with scenarios.http_server() as server:
        document = from_spec(TRY_CATCH_404.replace("TYPE", error_type), server)
        result, _ = await run_workflow(temporal_client, task_queue, document, {"petName": "Milou"})
        assert server.hits == {"/v2/pet/getPetByName/Milou": 1}
    error = result["error"]
    # Raised in the reference spelling, whichever spelling caught it.
    assert error["type"] == errors.COMMUNICATION
    assert error["status"] == 404
    assert error["title"]
    assert error["instance"] == "/do/0/tryGetPet/try/0/getPet"


async def test_a_document_retrying_a_503_twice_sends_exactly_three_requests(
    temporal_client: Client, task_queue: str
) -> None:
    with scenarios.http_server() as server:
        result, progress = await run_workflow(
            temporal_client, task_queue, from_spec(TRY_CATCH_RETRY, server), {"petId": 7}
        )
        # The engine added no retries of its own to the document's two.
        assert server.hits == {"/unavailable/7": 3}
    # Retries spent, the catch (without `do`) ends the try with its input.
    assert result == {"petId": 7}
    assert [entry.status for entry in progress].count("failed") == 3


async def test_uri_template_values_are_percent_encoded_and_missing_ones_are_empty(
    temporal_client: Client, task_queue: str
) -> None:
    document = scenarios.inline(
        """
do:
  - get:
      call: http
      with:
        method: get
        endpoint: BASE/echo/{name}/{pet.id}?missing={missing}&flag={flag}
"""
    )
    with scenarios.http_server() as server:
        document["do"][0]["get"]["with"]["endpoint"] = document["do"][0]["get"]["with"][
            "endpoint"
        ].replace("BASE", server.url)
        result, _ = await run_workflow(
            temporal_client,
            task_queue,
            document,
            {"name": "a b/c", "pet.id": 3, "pet": {"id": 4}, "flag": True},
        )
    assert result["path"] == "/echo/a%20b%2Fc/3?missing=&flag=true"


async def test_a_uri_template_variable_that_is_an_object_is_an_expression_error(
    temporal_client: Client, task_queue: str
) -> None:
    with scenarios.http_server() as server:
        document = from_spec(OUTPUT_FILTERING, server)
        with pytest.raises(WorkflowFailureError) as failure:
            await run_workflow(temporal_client, task_queue, document, {"petId": {"id": 1}})
        assert not server.hits
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    details = cause.details[0]
    assert details["type"] == errors.EXPRESSION
    assert details["status"] == 400
    assert details["instance"] == "/do/0/getPet"


async def test_an_expression_endpoint_is_not_expanded_again(
    temporal_client: Client, task_queue: str
) -> None:
    # examples/call-http-endpoint-interpolation.yaml: the expression builds the URI itself.
    text = """
document:
  dsl: '1.0.3'
  namespace: examples
  name: call-http-shorthand-endpoint
  version: '0.1.0'
do:
  - getPet:
      call: http
      with:
        headers:
          content-type: application/json
        method: get
        endpoint: ${ "https://petstore.swagger.io/v2/pet/\\(.petId)" }
"""
    with scenarios.http_server() as server:
        result, _ = await run_workflow(
            temporal_client, task_queue, from_spec(text, server), {"petId": 5}
        )
    assert result == {"id": 5, "name": "pet 5"}
