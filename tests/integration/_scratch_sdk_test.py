import json
from tests.integration.test_responses_sdk import flow, SDKS
import pytest

@pytest.mark.parametrize("section", ["code", "stream", "replay", "files", "conversation", "containers", "background"])
def test_dump(section, live_server, scripted_model, quarterly_csv):
    seen = flow("openai-3.57.0", section, live_server, scripted_model, quarterly_csv)
    with open(f"/tmp/sdk-dump-{section}.json", "w") as f:
        json.dump(seen, f, indent=1)
