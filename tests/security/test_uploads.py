"""Hostile upload names (spec/sandbox.md F4, F5) through the real API into a real session's /mnt/data.

The multipart bodies are written byte for byte here: a client library would percent-escape the very
characters (NUL, newline, quotes) whose handling is under test.
"""

from __future__ import annotations

import json
import unicodedata

import httpx
import openai
import pytest

from tests.code_runs import printed_in_new_thread
from tests.scripted_model import ScriptedModel

pytestmark = pytest.mark.slow

BOUNDARY = "agentbox-hostile-names"


def upload_raw(http: httpx.Client, filename: bytes, content: bytes) -> httpx.Response:
    """POST /files with the filename's bytes exactly as given in Content-Disposition."""
    body = b"".join(
        [
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'.encode(),
            f"--{BOUNDARY}\r\n".encode(),
            b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n',
            b"Content-Type: application/octet-stream\r\n\r\n",
            content,
            f"\r\n--{BOUNDARY}--\r\n".encode(),
        ]
    )
    return http.post(
        "/files", content=body, headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    )


def refused_upload(http: httpx.Client, filename: bytes) -> dict[str, object]:
    """The error of an upload that must be a 400 and store nothing."""
    before = http.get("/files", params={"limit": 100}).json()["data"]
    response = upload_raw(http, filename, b"never stored")
    assert response.status_code == 400
    assert http.get("/files", params={"limit": 100}).json()["data"] == before
    return response.json()["error"]  # type: ignore[no-any-return]


LIST_AND_PROBE = (
    "import json, os\n"
    "print(json.dumps({'data': sorted(os.listdir('/mnt/data')),"
    " 'escaped': [p for p in ('/mnt/x.csv', '/etc/x.csv', '/x.csv') if os.path.exists(p)],"
    " 'contents': {n: open('/mnt/data/' + n).read() for n in sorted(os.listdir('/mnt/data'))}}))"
)


def test_f4_path_names_are_reduced_to_their_basename_and_land_in_mnt_data_only(
    http: httpx.Client, client: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    dotted = upload_raw(http, b"../x.csv", b"dotted")
    absolute = upload_raw(http, b"/etc/x.csv", b"absolute")
    windows = upload_raw(http, b"..\\..\\win.csv", b"windows")
    assert [r.status_code for r in (dotted, absolute, windows)] == [200, 200, 200]
    assert [r.json()["filename"] for r in (dotted, absolute, windows)] == ["x.csv", "x.csv", "win.csv"]

    printed = json.loads(
        printed_in_new_thread(
            client, scripted_model, [dotted.json()["id"], absolute.json()["id"], windows.json()["id"]],
            LIST_AND_PROBE,
        )
    )  # fmt: skip
    # Two uploads reduced to one name both arrive, the later one renamed, in the order attached.
    assert printed["data"] == ["win.csv", "x (2).csv", "x.csv"]
    assert printed["contents"] == {"win.csv": "windows", "x (2).csv": "absolute", "x.csv": "dotted"}
    assert printed["escaped"] == []


@pytest.mark.parametrize(
    ("filename", "message"),
    [
        (b"a\x00b.csv", "The filename must not contain NUL characters."),
        (b"x" * 300 + b".csv", "The filename is longer than 255 bytes."),
        ("\u00e9".encode() * 130, "The filename is longer than 255 bytes."),  # 260 bytes, 130 characters
        (b"..", "'..' is not a usable filename."),
        (b".", "'.' is not a usable filename."),
        (b"dir/..", "'dir/..' is not a usable filename."),
        (b"", "The uploaded file has no filename."),
    ],
    ids=["nul", "300-bytes", "260-utf8-bytes", "dotdot", "dot", "dir-dotdot", "empty"],
)
def test_f4_unusable_names_are_a_400_that_says_why_and_store_nothing(
    http: httpx.Client, filename: bytes, message: str
) -> None:
    error = refused_upload(http, filename)
    assert error["message"] == message
    assert error["param"] == "file"
    assert error["type"] == "invalid_request_error"


CONTROL = "The filename must not contain control characters."


@pytest.mark.parametrize(
    ("filename", "message"),
    [
        (b"line\nbreak.csv", CONTROL),
        # A bare CR ends the header line itself: the body is no longer valid multipart.
        (b"carriage\rreturn.csv", "Invalid multipart data. (POST /v1/files)"),
        (b"escape\x1b[31mred.csv", CONTROL),
        ("invoice\u202egpj.exe".encode(), CONTROL),  # displays as invoiceexe.jpg
        ("isolate\u2066x\u2069.csv".encode(), CONTROL),
    ],
    ids=["newline", "cr", "ansi", "rtl-override", "bidi-isolate"],
)
def test_f5_control_and_bidi_characters_are_refused(
    http: httpx.Client, filename: bytes, message: str
) -> None:
    assert refused_upload(http, filename)["message"] == message


def test_f5_unicode_twins_are_stored_nfc_and_collide_deterministically(
    http: httpx.Client, client: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    nfd = upload_raw(http, "caf\u0065\u0301.csv".encode(), b"decomposed")
    nfc = upload_raw(http, "caf\u00e9.csv".encode(), b"composed")
    wide = upload_raw(http, "\uff41\uff42\uff43\uff0f\uff24.csv".encode(), b"full-width")
    dash = upload_raw(http, b"-rf.csv", b"leading dash")
    responses = (nfd, nfc, wide, dash)
    assert [r.status_code for r in responses] == [200, 200, 200, 200]
    names = [r.json()["filename"] for r in responses]
    assert names == ["caf\u00e9.csv", "caf\u00e9.csv", "\uff41\uff42\uff43\uff0f\uff24.csv", "-rf.csv"]
    assert all(unicodedata.is_normalized("NFC", n) for n in names)

    ids = [r.json()["id"] for r in responses]
    for order in (ids, [ids[1], ids[0], *ids[2:]]):
        printed = json.loads(printed_in_new_thread(client, scripted_model, order, LIST_AND_PROBE))
        first, second = ("decomposed", "composed") if order is ids else ("composed", "decomposed")
        # The first attached keeps the name; the twin gets " (2)" — the same every time.
        assert printed["contents"] == {
            "caf\u00e9.csv": first,
            "caf\u00e9 (2).csv": second,
            "\uff41\uff42\uff43\uff0f\uff24.csv": "full-width",  # a full-width solidus is no separator
            "-rf.csv": "leading dash",
        }

    download = http.get(f"/files/{wide.json()['id']}/content")
    assert download.content == b"full-width"
    assert download.headers["content-disposition"] == (
        'attachment; filename="_____.csv"; '
        "filename*=UTF-8''%EF%BD%81%EF%BD%82%EF%BD%83%EF%BC%8F%EF%BC%A4.csv"
    )
