"""The direct execution API (an agentbox extension): code in a container with no model configured."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import API_KEY
from tests.live_server import LiveServer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with no model at all: everything here must work without one."""
    live = LiveServer(
        tmp_path_factory.mktemp("agentbox-exec") / "data", API_KEY, AGENTBOX_INTERRUPT_GRACE_S="2"
    ).start()
    yield live
    live.stop()


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120
    ) as client:
        yield client


@pytest.fixture
def container(api: httpx.Client) -> str:
    response = api.post("/containers", json={"name": "exec-test"})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def run(api: httpx.Client, container: str, code: str, **options: Any) -> dict[str, Any]:
    response = api.post(f"/containers/{container}/exec", json={"code": code, **options})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def events(api: httpx.Client, container: str, code: str) -> Iterator[tuple[float, str, dict[str, Any]]]:
    """(seconds since the request, event name, data) of a streamed exec, as they arrive."""
    started = time.monotonic()
    with api.stream("POST", f"/containers/{container}/exec", json={"code": code, "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                assert data["type"] == name
                yield time.monotonic() - started, name, data


def test_exec_returns_output_figures_and_files(api: httpx.Client, container: str) -> None:
    code = (
        "import sys\n"
        "import matplotlib.pyplot as plt\n"
        "total = sum(range(101))\n"
        "print('total', total)\n"
        "print('careful', file=sys.stderr)\n"
        "plt.plot([1, 3, 2])\n"
        "plt.show()\n"
        "open('/mnt/data/result.txt', 'w').write(str(total))\n"
    )
    body = run(api, container, code)
    assert body["object"] == "container.exec"
    assert body["id"].startswith("exec_")
    assert body["container_id"] == container
    assert body["status"] == "ok"
    # The last expression's value is shown, as in a notebook: write() returned 4.
    assert body["stdout"] == "total 5050\n4\n"
    assert body["stderr"] == "careful\n"
    assert body["error"] is None
    assert body["duration_ms"] > 0
    [image] = body["images"]
    assert image["path"] == f"/mnt/data/figures/{body['id']}-1.png"
    png = api.get(f"/containers/{container}/files/{image['id']}/content")
    assert png.content.startswith(PNG_MAGIC)
    assert len(png.content) == image["bytes"]
    [written] = body["files"]
    assert written["path"] == "/mnt/data/result.txt"
    assert api.get(f"/containers/{container}/files/{written['id']}/content").text == "5050"


def test_an_image_file_the_cell_wrote_is_its_image_when_it_showed_no_figure(
    api: httpx.Client, container: str
) -> None:
    code = (
        "import matplotlib.pyplot as plt\n"
        "fig = plt.figure()\nplt.plot([1, 2])\nfig.savefig('/mnt/data/saved.png')\nplt.close(fig)\n"
        "open('/mnt/data/fake.png', 'w').write('not an image')\n"
    )
    body = run(api, container, code)
    saved = next(f for f in body["files"] if f["path"] == "/mnt/data/saved.png")
    assert {f["path"] for f in body["files"]} == {"/mnt/data/saved.png", "/mnt/data/fake.png"}
    assert body["images"] == [saved]  # the same container file, not a second copy; fake.png is no image


def test_state_persists_between_execs_and_errors_are_reported(api: httpx.Client, container: str) -> None:
    assert run(api, container, "rows = [3, 4]")["status"] == "ok"
    body = run(api, container, "print(sum(rows))\n{}['missing']")
    assert body["status"] == "error"
    assert body["stdout"] == "7\n"
    assert body["error"]["name"] == "KeyError"
    assert body["error"]["value"] == "'missing'"
    assert "<cell-2>" in body["error"]["traceback"]
    assert body["error"]["traceback"].rstrip().endswith("KeyError: 'missing'")


def test_uploaded_file_is_readable_by_the_code(
    api: httpx.Client, container: str, quarterly_csv: Path
) -> None:
    uploaded = api.post(
        f"/containers/{container}/files", files={"file": ("q.csv", quarterly_csv.read_bytes(), "text/csv")}
    )
    assert uploaded.status_code == 200, uploaded.text
    body = run(api, container, "import pandas as pd\nlen(pd.read_csv('/mnt/data/q.csv'))")
    assert body["stdout"] == "500\n"


def test_streamed_output_arrives_while_the_cell_runs(api: httpx.Client, container: str) -> None:
    code = "import sys, time\nprint('first', flush=True)\ntime.sleep(2)\nprint('oops', file=sys.stderr)\n"
    seen = list(events(api, container, code))
    names = [name for _, name, _ in seen]
    assert names[0] == "exec.created"
    assert names[-1] == "exec.completed"
    deltas = [(at, data) for at, name, data in seen if name == "exec.output.delta"]
    first_at, first = deltas[0]
    assert (first["stream"], first["delta"]) == ("stdout", "first\n")
    completed_at = seen[-1][0]
    assert completed_at - first_at >= 1.5  # the first line came before the sleep ended
    assert [(d["stream"], d["delta"]) for _, d in deltas[1:]] == [("stderr", "oops\n")]
    final = seen[-1][2]["exec"]
    assert final["status"] == "ok"
    assert (final["stdout"], final["stderr"]) == ("first\n", "oops\n")


def test_streamed_figure_is_an_image_event(api: httpx.Client, container: str) -> None:
    seen = list(
        events(api, container, "import matplotlib.pyplot as plt\nplt.bar([1, 2], [3, 4])\nplt.show()")
    )
    [image] = [data["file"] for _, name, data in seen if name == "exec.image"]
    assert api.get(f"/containers/{container}/files/{image['id']}/content").content.startswith(PNG_MAGIC)
    assert seen[-1][2]["exec"]["images"] == [image]


def test_interrupt_stops_a_long_cell_and_keeps_state(api: httpx.Client, container: str) -> None:
    run(api, container, "kept = 'still here'")
    result: dict[str, Any] = {}

    def long_cell() -> None:
        result.update(run(api, container, "import time\nprint('sleeping', flush=True)\ntime.sleep(60)"))

    worker = threading.Thread(target=long_cell)
    started = time.monotonic()
    worker.start()
    interrupted = False
    while not interrupted and time.monotonic() - started < 20:
        time.sleep(0.2)
        answer = api.post(f"/containers/{container}/interrupt")
        assert answer.status_code == 200
        interrupted = answer.json()["interrupted"]
    worker.join(30)
    assert interrupted
    assert time.monotonic() - started < 15
    assert result["status"] == "interrupted"
    assert result["error"]["name"] == "KeyboardInterrupt"
    assert result["stdout"] == "sleeping\n"
    assert run(api, container, "print(kept)")["stdout"] == "still here\n"
    # Nothing running now: nothing to interrupt.
    assert api.post(f"/containers/{container}/interrupt").json() == {
        "object": "container.interrupt",
        "container_id": container,
        "interrupted": False,
    }


def test_a_cell_that_ignores_interrupts_is_killed_after_the_grace(api: httpx.Client, container: str) -> None:
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "print('stubborn', flush=True)\n"
        "time.sleep(60)\n"
    )
    # Interrupted only once it printed, i.e. after it ignored SIGINT: an earlier interrupt would land
    # before signal.signal and end the cell as plain "interrupted".
    started = time.monotonic()
    result: dict[str, Any] = {}
    for _, name, data in events(api, container, code):
        if name == "exec.output.delta":
            assert api.post(f"/containers/{container}/interrupt").json()["interrupted"] is True
        elif name == "exec.completed":
            result = data["exec"]
    assert time.monotonic() - started < 15
    assert result["status"] == "killed"
    assert result["stdout"] == "stubborn\n"
    assert "did not stop within 2 s of an interrupt" in result["error"]["value"]
    after = run(api, container, "print('fresh')")
    assert after["restarted"] is True
    assert after["stdout"] == "fresh\n"


def test_concurrent_execs_on_one_container_queue(api: httpx.Client, container: str) -> None:
    run(api, container, "log = []")
    cell = "import time\nfor _ in range(3):\n    log.append({!r})\n    time.sleep(0.2)\n"
    workers = [threading.Thread(target=run, args=(api, container, cell.format(tag))) for tag in "ab"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert run(api, container, "print(''.join(log))")["stdout"] in ("aaabbb\n", "bbbaaa\n")


def test_timeout_interrupts_and_keeps_variables(api: httpx.Client, container: str) -> None:
    body = run(api, container, "n = 5\nimport time\ntime.sleep(30)", timeout=1)
    assert body["status"] == "timeout"
    assert body["duration_ms"] < 10_000
    assert run(api, container, "print(n)")["stdout"] == "5\n"


def test_a_dead_kernel_is_reported_and_replaced(api: httpx.Client, container: str) -> None:
    # Output the cell wrote before the kernel died was already sent on: it is not lost with it.
    body = run(api, container, "import os, time\nprint('bye', flush=True)\ntime.sleep(0.5)\nos._exit(3)")
    assert body["status"] == "killed"
    assert body["stdout"] == "bye\n"
    assert body["error"]["name"] == "SessionKilled"
    again = run(api, container, "print('back')")
    assert again["restarted"] is True
    assert "the kernel exited" in again["state_lost_reason"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "code"),
        ({"code": "1", "timeout": 0}, "timeout"),
        ({"code": "1", "timeout": 3601}, "timeout"),
        ({"code": "1", "timeot": 5}, "timeot"),
    ],
)
def test_bad_exec_bodies_are_400(api: httpx.Client, container: str, body: dict[str, Any], param: str) -> None:
    response = api.post(f"/containers/{container}/exec", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_unknown_container_is_404_before_any_stream(api: httpx.Client) -> None:
    for stream in (False, True):
        response = api.post("/containers/cntr_missing/exec", json={"code": "1", "stream": stream})
        assert response.status_code == 404
        assert response.json()["error"]["message"] == "No container found with id 'cntr_missing'."
    assert api.post("/containers/cntr_missing/interrupt").status_code == 404


def test_exec_needs_the_api_key(server: LiveServer, container: str) -> None:
    response = httpx.post(f"{server.base_url}/containers/{container}/exec", json={"code": "1"})
    assert response.status_code == 401


def test_the_readme_curl_lines_work_as_written(server: LiveServer) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("- **curl**", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    script = block.replace("localhost:8000", f"127.0.0.1:{server.port}")
    script = script.replace("cat data/api_key", f"echo {API_KEY}")
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, check=True)
    body = json.loads(result.stdout)
    assert (body["status"], body["stdout"]) == ("ok", "45\n")
