"""The playground in headless Chromium against a live agentbox with the scripted model."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import FilePayload

from tests.conftest import API_KEY
from tests.e2e.conftest import Watched, add_code_interpreter, create_agent, send, sign_in, wait_for_run
from tests.integration.test_seed_scenario import (
    CHART,
    PNG_MAGIC,
    PROMPT,
    WRONG_COLUMN,
    answer_with_total,
    expected_total,
)
from tests.live_server import LiveServer
from tests.scripted_model import Code, ScriptedModel, Text, last_tool_output


def api(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)


def test_the_page_is_served_with_a_strict_policy_and_pinned_libraries(e2e_server: LiveServer) -> None:
    page = httpx.get(e2e_server.url + "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    for name in ("marked.js", "purify.js", "highlight.js", "python.js"):
        library = httpx.get(f"{e2e_server.url}/playground/vendor/{name}")
        assert library.status_code == 200 and library.headers["content-type"].startswith("text/javascript")
    assert httpx.get(f"{e2e_server.url}/playground/vendor/package.json").status_code == 404
    assert httpx.get(f"{e2e_server.url}/v1/assistants").status_code == 401  # the API still wants a key
    assert httpx.get(f"{e2e_server.url}/healthz").json() == {"status": "ok"}


def test_chart_from_the_csv_end_to_end(
    laptop: Watched,
    e2e_server: LiveServer,
    scripted_model: ScriptedModel,
    quarterly_csv: Path,
    tmp_path: Path,
) -> None:
    page = laptop.page
    page.goto(e2e_server.url + "/")
    page.get_by_label("API key").fill("sk-wrong")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("This server did not accept that key.").wait_for()
    laptop.screenshot("01-sign-in")
    sign_in(laptop, e2e_server)
    agent_id = create_agent(laptop, "Quarterly analyst")

    page.get_by_label("Instructions").fill("You are a helpful agent that analyses data with code.")
    page.get_by_label("Instructions").blur()
    add_code_interpreter(laptop)
    page.locator("#tool-files").set_input_files(str(quarterly_csv))
    listed = page.locator("#tool-file-list .file:not(.uploading)", has_text=quarterly_csv.name)
    listed.wait_for()
    page.locator("#save-state", has_text="Saved").wait_for()
    with api(e2e_server) as client:
        agent = client.get(f"/assistants/{agent_id}").json()
    assert agent["tools"] == [{"type": "code_interpreter"}]
    assert agent["instructions"].startswith("You are a helpful agent")
    (file_id,) = agent["tool_resources"]["code_interpreter"]["file_ids"]

    scripted_model.script(Code(WRONG_COLUMN), Code(CHART), answer_with_total)
    send(laptop, PROMPT)
    wait_for_run(laptop, "completed")
    total = expected_total(quarterly_csv)
    answer = page.locator(".message.assistant").last
    assert f"totals {total}" in answer.inner_text()

    chart = answer.locator("figure.image img")
    chart.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=chart.element_handle())
    assert chart.evaluate("img => img.naturalWidth") > 0

    steps = page.locator("details.code-step")
    assert steps.count() == 2
    assert steps.nth(0).get_attribute("open") is None  # collapsed until asked
    assert "raised an error" in steps.nth(0).locator(".step-status").inner_text()
    assert "1 image" in steps.nth(1).locator(".step-status").inner_text()
    laptop.screenshot("02-create-and-debug-answer")
    steps.nth(0).locator("summary").click()
    assert "KeyError: 'Sector'" in steps.nth(0).locator("pre.logs").inner_text()
    steps.nth(1).locator("summary").click()
    code = steps.nth(1).locator("pre.code code")
    assert "plt.savefig" in code.inner_text()
    assert code.locator("span.hljs-keyword").count() > 0  # highlighted
    assert f"TOTAL={total}" in steps.nth(1).locator("pre.logs").inner_text()
    assert steps.nth(1).locator("figure.image img").count() == 1
    steps.nth(1).scroll_into_view_if_needed()
    laptop.screenshot("03-code-step-open")

    link = answer.locator("a.file-link", has_text="Download the bar chart")
    with page.expect_download() as download_info:
        link.click()
    download = download_info.value
    assert download.suggested_filename == "transportation_operating_profit.png"
    saved = tmp_path / "chart.png"
    download.save_as(saved)
    assert saved.read_bytes().startswith(PNG_MAGIC) and saved.stat().st_size > 5_000

    # The thread is remembered: reloading shows the same conversation from the stored objects.
    page.reload()
    wait_for_run(laptop, "completed")
    assert page.locator("details.code-step").count() == 2
    assert f"totals {total}" in page.locator(".message.assistant").last.inner_text()
    assert page.locator(".thread.current").inner_text().startswith("Could you please create bar chart")
    assert file_id in page.locator("#tool-file-list .file").first.get_attribute("data-file-id")  # type: ignore[operator]


def test_stop_cancels_a_long_run(
    laptop: Watched, e2e_server: LiveServer, scripted_model: ScriptedModel
) -> None:
    page = laptop.page
    sign_in(laptop, e2e_server)
    create_agent(laptop, "Sleeper")
    add_code_interpreter(laptop)
    scripted_model.script(Code("import time\nprint('started', flush=True)\ntime.sleep(35)"), Text("woke up"))
    send(laptop, "Take a long nap.")
    page.locator("details.code-step").wait_for()
    stop = page.get_by_role("button", name="Stop")
    stop.wait_for()
    laptop.screenshot("04-run-in-progress")
    stop.click()
    wait_for_run(laptop, "cancelled", timeout_ms=20_000)
    status = page.locator(".run-status").last.inner_text()
    assert "cancelled" in status
    assert page.locator("details.code-step .step-status").inner_text() == "cancelled"
    assert page.get_by_role("button", name="Send").is_visible()
    run_id = page.locator(".run").last.get_attribute("data-run-id")
    thread_id = page.locator(".thread.current").get_attribute("data-thread-id")
    with api(e2e_server) as client:
        assert client.get(f"/threads/{thread_id}/runs/{run_id}").json()["status"] == "cancelled"
    laptop.screenshot("05-run-cancelled")


def test_failed_runs_say_why(laptop: Watched, e2e_server: LiveServer, scripted_model: ScriptedModel) -> None:
    page = laptop.page
    sign_in(laptop, e2e_server)
    create_agent(laptop, "Looper")
    add_code_interpreter(laptop)
    scripted_model.script(*[Code("1")] * 13)  # past the server's limit of 12 executions
    send(laptop, "Loop forever.")
    wait_for_run(laptop, "failed")
    assert "Failed: " in page.locator(".run-status").last.inner_text()
    assert "limit of 12 code executions" in page.locator(".run-status").last.inner_text()


HOSTILE_NAME = '"><script>window.__xss=1<img src=x onerror=alert(1)>.csv'
HOSTILE_CODE = (
    "print('<img src=x onerror=alert(7)><script>alert(8)</script>')\n"
    "import os\nprint(os.listdir('/mnt/data'))"
)
HOSTILE_TEXT = (
    "Look: <img src=x onerror=alert(1)> <script>alert(2)</script> "
    '[click me](javascript:alert(3)) <a href="javascript:alert(4)">also</a> '
    '<iframe src="javascript:alert(5)"></iframe> **bold** and `code`'
)


def test_untrusted_names_logs_and_text_never_run(
    laptop: Watched, e2e_server: LiveServer, scripted_model: ScriptedModel
) -> None:
    page = laptop.page
    sign_in(laptop, e2e_server)
    create_agent(laptop, "<img src=x onerror=alert('agent')>")
    assert page.locator("#agent-name").input_value() == "<img src=x onerror=alert('agent')>"
    add_code_interpreter(laptop)
    page.locator("#tool-files").set_input_files(
        FilePayload(name=HOSTILE_NAME, mimeType="text/csv", buffer=b"a,b\n1,2\n")
    )
    page.locator("#tool-file-list .file:not(.uploading)", has_text="<script>").wait_for()
    page.locator("#attach-input").set_input_files(
        FilePayload(name='"><script>alert(6).txt', mimeType="text/plain", buffer=b"hi")
    )
    page.locator("#attachments .chip:not(.uploading)").wait_for()
    scripted_model.script(
        Code(HOSTILE_CODE),
        lambda m: Text(HOSTILE_TEXT + "\n\n```\n" + last_tool_output(m) + "\n```"),
    )
    send(laptop, "<img src=x onerror=alert(9)>")
    wait_for_run(laptop, "completed")
    page.locator("details.code-step summary").click()
    laptop.screenshot("06-untrusted-content")

    assert page.evaluate("window.__xss") is None
    assert page.locator("[onerror]").count() == 0
    assert page.locator("#messages script, #messages iframe").count() == 0
    assert page.locator("#messages a[href^='javascript']").count() == 0
    answer = page.locator(".message.assistant").last
    assert answer.locator("strong", has_text="bold").count() == 1  # markdown still renders
    logs = page.locator("pre.logs").first.inner_text()
    assert "<img src=x onerror=alert(7)><script>alert(8)</script>" in logs
    # Browsers send `"` in a multipart file name as %22 (HTML's form encoding); the rest arrives as is.
    assert HOSTILE_NAME.replace('"', "%22") in page.locator("#tool-file-list").inner_text()
    assert "><script>alert(6)" in page.locator(".message.user").last.inner_text()
    assert "<img src=x onerror=alert(9)>" in page.locator(".message.user").last.inner_text()
    page.goto(e2e_server.url + "/#/")
    page.locator(".agent-name", has_text="<img src=x onerror=alert('agent')>").wait_for()


DROP_A_FILE = """() => {
  const data = new DataTransfer();
  data.items.add(new File(["x,y\\n1,2\\n"], "dropped.csv", { type: "text/csv" }));
  const zone = document.querySelector("#dropzone");
  zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: data, bubbles: true, cancelable: true }));
  zone.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
}"""


def test_agents_and_threads_are_managed_from_the_page(
    laptop: Watched, e2e_server: LiveServer, scripted_model: ScriptedModel
) -> None:
    page = laptop.page
    sign_in(laptop, e2e_server)
    agent_id = create_agent(laptop, "Draft")
    scripted_model.script(Text("first answer"), Text("second answer"))
    send(laptop, "first question")
    wait_for_run(laptop, "completed")
    page.get_by_role("button", name="New thread").click()
    page.locator(".messages .empty").wait_for()
    prompt = page.get_by_label("Message")
    prompt.fill("line one")
    prompt.press("Shift+Enter")
    prompt.type("line two")
    assert prompt.input_value() == "line one\nline two"
    prompt.press("Enter")
    wait_for_run(laptop, "completed")
    assert page.locator(".thread").count() == 2
    page.locator(".thread-open", has_text="first question").click()
    page.locator(".message.assistant", has_text="first answer").wait_for()
    page.get_by_role("button", name="Delete thread first question").click()
    page.locator(".thread").nth(1).wait_for(state="detached")
    assert page.locator(".thread-open").inner_text() == "line one line two"

    add_code_interpreter(laptop)
    page.evaluate(DROP_A_FILE)
    dropped = page.locator("#tool-file-list .file:not(.uploading)", has_text="dropped.csv")
    dropped.wait_for()
    with api(e2e_server) as client:
        resources = client.get(f"/assistants/{agent_id}").json()["tool_resources"]
    (dropped_id,) = resources["code_interpreter"]["file_ids"]
    dropped.get_by_role("button", name="Remove dropped.csv").click()
    dropped.wait_for(state="detached")
    with api(e2e_server) as client:
        resources = client.get(f"/assistants/{agent_id}").json()["tool_resources"]
        assert resources["code_interpreter"]["file_ids"] == []
        assert client.get(f"/files/{dropped_id}").status_code == 200  # detached, not deleted

    page.goto(e2e_server.url + "/#/")
    row = page.locator(f'.agent-row[data-agent-id="{agent_id}"]')
    row.get_by_role("button", name="Rename").click()
    row.get_by_label("New name").fill("Renamed agent")
    row.get_by_role("button", name="Save").click()
    row.locator(".agent-name", has_text="Renamed agent").wait_for()
    laptop.screenshot("07-agents")
    row.get_by_role("button", name="Delete").click()
    row.get_by_role("button", name="Click again to delete").click()
    row.wait_for(state="detached")
    with api(e2e_server) as client:
        assert client.get(f"/assistants/{agent_id}").status_code == 404


def test_remove_detaches_the_file_and_leaves_it_to_whoever_else_uses_it(
    laptop: Watched, e2e_server: LiveServer
) -> None:
    page = laptop.page
    deletes: list[str] = []
    page.on("request", lambda request: deletes.append(request.url) if request.method == "DELETE" else None)
    sign_in(laptop, e2e_server)
    agent_id = create_agent(laptop, "Detacher")
    add_code_interpreter(laptop)
    page.locator("#tool-files").set_input_files(
        FilePayload(name="shared.csv", mimeType="text/csv", buffer=b"region,sales\nnorth,3\n")
    )
    shared = page.locator("#tool-file-list .file:not(.uploading)", has_text="shared.csv")
    shared.wait_for()
    page.locator("#save-state", has_text="Saved").wait_for()
    with api(e2e_server) as client:
        resources = client.get(f"/assistants/{agent_id}").json()["tool_resources"]
        (file_id,) = resources["code_interpreter"]["file_ids"]
        other = client.post(
            "/assistants",
            json={
                "model": "gpt-4o-mini",
                "tools": [{"type": "code_interpreter"}],
                "tool_resources": {"code_interpreter": {"file_ids": [file_id]}},
            },
        ).json()

    shared.get_by_role("button", name="Remove shared.csv").click()
    shared.wait_for(state="detached")
    page.locator("#save-state", has_text="Saved").wait_for()

    with api(e2e_server) as client:
        agent = client.get(f"/assistants/{agent_id}").json()
        assert agent["tool_resources"]["code_interpreter"]["file_ids"] == []
        assert file_id in [f["id"] for f in client.get("/files").json()["data"]]
        assert client.get(f"/files/{file_id}/content").content == b"region,sales\nnorth,3\n"
        again = client.get(f"/assistants/{other['id']}").json()
        assert again["tool_resources"]["code_interpreter"]["file_ids"] == [file_id]
        # Deleting a file that is still in use stays possible, through the API, as on OpenAI.
        deleted = client.delete(f"/files/{file_id}")
        assert deleted.status_code == 200 and deleted.json()["deleted"] is True
        assert client.get(f"/files/{file_id}").status_code == 404
    assert [url for url in deletes if "/files" in url] == []


def test_phone_width(phone: Watched, e2e_server: LiveServer, scripted_model: ScriptedModel) -> None:
    page = phone.page
    sign_in(phone, e2e_server)
    phone.screenshot("08-phone-agents")
    create_agent(phone, "Pocket")
    add_code_interpreter(phone)
    scripted_model.script(
        Code("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()"), Text("A **small** plot.")
    )
    send(phone, "Plot three points.")
    wait_for_run(phone, "completed")
    page.locator(".message.assistant figure.image img").wait_for()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "the page scrolls sideways on a phone"
    page.locator("#composer").scroll_into_view_if_needed()
    phone.screenshot("09-phone-chat")
