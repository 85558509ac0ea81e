"""Client mistakes get a clear 4xx in the OpenAI error shape and lose nothing."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.conftest import API_KEY
from tests.live_server import LiveServer
from tests.scripted_model import Code, ScriptedModel, Text


def error_of(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/assistants/asst_nope"),
        ("GET", "/threads/thread_nope"),
        ("GET", "/files/file-nope"),
        ("GET", "/files/file-nope/content"),
        ("GET", "/threads/thread_nope/messages"),
        ("DELETE", "/assistants/asst_nope"),
        ("POST", "/threads/thread_nope/runs/run_nope/cancel"),
    ],
)
def test_unknown_ids_are_404_in_openai_shape(http: httpx.Client, method: str, path: str) -> None:
    response = http.request(method, path)
    assert response.status_code == 404
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    assert "nope" in str(error["message"])


def test_the_sdk_raises_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.beta.threads.retrieve("thread_missing")
    assert "No thread found with id 'thread_missing'." in str(caught.value)


def test_malformed_json_is_400(http: httpx.Client) -> None:
    # The published Azure REST sample's body: a missing colon after "tool_resources".
    broken = (
        '{"instructions": "x", "tools": [{"type": "code_interpreter"}], "model": "gpt-4o-mini", '
        '"tool_resources"{ "code interpreter": {}}}'
    )
    response = http.post("/assistants", content=broken, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "could not parse the JSON body" in str(error_of(response)["message"])


@pytest.mark.parametrize(
    ("content", "content_type"),
    [('{"model": "m"}', "text/plain"), ("model=m", "application/x-www-form-urlencoded"), ("[1]", None)],
    ids=["text", "form", "array"],
)
def test_a_body_that_is_not_a_json_object_says_what_to_send(
    http: httpx.Client, content: str, content_type: str | None
) -> None:
    headers = {"content-type": content_type or "application/json"}
    response = http.post("/assistants", content=content, headers=headers)
    assert response.status_code == 400
    assert error_of(response)["message"] == (
        "The request body must be a JSON object, sent with 'Content-Type: application/json'."
    )


@pytest.mark.parametrize("path", ["/threads/{thread}/runs", "/threads/{thread}/runs/{run}/steps"])
def test_an_unknown_include_is_400_naming_it(
    http: httpx.Client, client: openai.OpenAI, scripted_model: ScriptedModel, path: str
) -> None:
    assistant = http.post("/assistants", json={"model": "m"}).json()
    thread = http.post("/threads").json()
    scripted_model.script(Text("ok"))
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread["id"], assistant_id=assistant["id"], poll_interval_ms=50
    ).model_dump()
    url = path.format(thread=thread["id"], run=run["id"])
    response = http.request("POST" if url.endswith("runs") else "GET", url, params={"include[]": "bogus"})
    assert response.status_code == 400
    assert error_of(response)["param"] == "include[].0"
    known = "step_details.tool_calls[*].file_search.results[*].content"
    if not url.endswith("runs"):
        assert http.get(url, params={"include[]": known}).json()["data"][0]["type"] == "message_creation"


def test_missing_required_field_names_it(http: httpx.Client) -> None:
    response = http.post("/assistants", json={"instructions": "no model"})
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == "model"
    assert error["message"] == "Missing required parameter: 'model'."


def test_wrong_type_names_the_field(http: httpx.Client) -> None:
    thread = http.post("/threads").json()
    response = http.post(f"/threads/{thread['id']}/messages", json={"role": "robot", "content": "hi"})
    assert response.status_code == 400
    assert error_of(response)["param"] == "role"


@pytest.mark.parametrize(
    ("content", "param", "message"),
    [
        (
            5,
            "content",
            "Invalid value for 'content': Input should be a valid string, or Input should be a valid list.",
        ),
        (
            [{"type": "video"}],
            "content.0",
            "Invalid value for 'content.0': Input tag 'video' found using 'type' does not match any of the "
            "expected tags: 'text', 'image_file', 'image_url'.",
        ),
        (
            [{"type": "image_file", "image_file": {}}],
            "content.0.image_file.file_id",
            "Missing required parameter: 'content.0.image_file.file_id'.",
        ),
        (
            [{"type": "image_file", "image_file": {"file_id": "file-gone"}}],
            "message.content.0",
            "Invalid file id 'file-gone' in an image_file content part: no such file.",
        ),
    ],
    ids=["number", "unknown-part", "part-without-file-id", "unknown-file"],
)
def test_bad_message_content_names_the_part(
    http: httpx.Client, content: object, param: str, message: str
) -> None:
    thread = http.post("/threads").json()
    response = http.post(f"/threads/{thread['id']}/messages", json={"role": "user", "content": content})
    assert response.status_code == 400
    assert (error_of(response)["param"], error_of(response)["message"]) == (param, message)
    assert http.get(f"/threads/{thread['id']}/messages").json()["data"] == []


@pytest.mark.parametrize(
    ("tool", "param"),
    [
        ({"type": "function"}, "tools.0.function"),
        ({"type": "function", "function": {"description": "no name"}}, "tools.0.function.name"),
        ({"type": "function", "function": {"name": "has spaces"}}, "tools.0.function.name"),
        ({"type": "magic"}, "tools.0"),
    ],
)
def test_a_tool_without_a_usable_definition_is_400_not_a_failed_run(
    http: httpx.Client, tool: dict[str, object], param: str
) -> None:
    response = http.post("/assistants", json={"model": "m", "tools": [tool]})
    assert response.status_code == 400
    assert error_of(response)["param"] == param
    assistant = http.post("/assistants", json={"model": "m"}).json()
    thread = http.post("/threads").json()
    run = http.post(f"/threads/{thread['id']}/runs", json={"assistant_id": assistant["id"], "tools": [tool]})
    assert run.status_code == 400
    assert error_of(run)["param"] == param


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"api-key": "wrong"}])
def test_missing_or_wrong_key_is_401(live_server: LiveServer, headers: dict[str, str]) -> None:
    response = httpx.get(f"{live_server.base_url}/assistants", headers=headers)
    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_api_key"


def test_api_key_header_is_accepted(live_server: LiveServer) -> None:
    response = httpx.get(f"{live_server.base_url}/assistants", headers={"api-key": API_KEY})
    assert response.status_code == 200


def test_unknown_file_in_tool_resources_is_400(http: httpx.Client) -> None:
    body = {"model": "m", "tool_resources": {"code_interpreter": {"file_ids": ["file-missing"]}}}
    response = http.post("/assistants", json=body)
    assert response.status_code == 400
    assert "file-missing" in str(error_of(response)["message"])


def test_upload_without_purpose_or_file_is_400(http: httpx.Client) -> None:
    no_purpose = http.post("/files", files={"file": ("a.csv", b"x,y\n1,2\n")})
    assert no_purpose.status_code == 400 and error_of(no_purpose)["param"] == "purpose"
    no_file = http.post("/files", data={"purpose": "assistants"})
    assert no_file.status_code == 400 and error_of(no_file)["param"] == "file"
    bad_purpose = http.post("/files", data={"purpose": "nonsense"}, files={"file": ("a.csv", b"x")})
    assert bad_purpose.status_code == 400 and error_of(bad_purpose)["param"] == "purpose"


def test_upload_name_is_reduced_to_a_safe_basename(http: httpx.Client) -> None:
    response = http.post(
        "/files", data={"purpose": "assistants"}, files={"file": ("../../etc/evil.csv", b"a\n")}
    )
    assert response.status_code == 200
    assert response.json()["filename"] == "evil.csv"
    content = http.get(f"/files/{response.json()['id']}/content")
    assert content.content == b"a\n"
    assert "filename*=UTF-8''evil.csv" in content.headers["content-disposition"]


def test_second_run_on_a_busy_thread_is_400_and_nothing_is_lost(
    client: openai.OpenAI, http: httpx.Client, scripted_model: ScriptedModel
) -> None:
    assistant = client.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "wait a bit"}])
    scripted_model.script(Code("x = 5"), Text("set"))  # the session is warm before the slow cell
    client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    slow = "x = 7\nimport time\ntime.sleep(60)\nopen('late.txt', 'w').write('too late')"
    scripted_model.script(Code(slow), Text("done"))
    first = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)

    second = http.post(f"/threads/{thread.id}/runs", json={"assistant_id": assistant.id})
    assert second.status_code == 400
    assert first.id in str(error_of(second)["message"])
    message = http.post(f"/threads/{thread.id}/messages", json={"role": "user", "content": "more"})
    assert message.status_code == 400

    wait_for_a_step(client, thread.id, first.id)
    time.sleep(0.5)  # the cell is sleeping now
    cancelled = client.beta.threads.runs.cancel(thread_id=thread.id, run_id=first.id)
    assert cancelled.status in ("cancelling", "cancelled")
    final = client.beta.threads.runs.poll(thread_id=thread.id, run_id=first.id, poll_interval_ms=50)
    assert final.status == "cancelled"
    roles = [m.role for m in client.beta.threads.messages.list(thread_id=thread.id, order="asc").data]
    assert roles == ["user", "assistant"]  # the cancelled run added nothing

    # The cell was interrupted, not left running: the session answers at once, its state kept.
    scripted_model.reset()  # drop the answer the cancelled run never asked for
    scripted_model.script(Code("import os\nprint(x * 6, os.path.exists('late.txt'))"), Text("forty-two"))
    again = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert again.status == "completed", again.last_error
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=again.id, order="asc").data
    assert steps[0].step_details.tool_calls[0].code_interpreter.outputs[0].logs.strip() == "42 False"  # type: ignore[union-attr]


def wait_for_a_step(client: openai.OpenAI, thread_id: str, run_id: str) -> None:
    deadline = time.monotonic() + 30
    while not client.beta.threads.runs.steps.list(thread_id=thread_id, run_id=run_id).data:
        assert time.monotonic() < deadline, "the run never started a step"
        time.sleep(0.05)
