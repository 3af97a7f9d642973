from __future__ import annotations

import json

from dialog import json_schema_text
from tests.dialog.conftest import REPO


def test_committed_json_schema_matches_the_model() -> None:
    committed = (REPO / "docs" / "script.schema.json").read_text(encoding="utf-8")
    assert committed == json_schema_text(), (
        "docs/script.schema.json is stale; regenerate with "
        "python -c 'from dialog import json_schema_text; print(json_schema_text(), end=\"\")' "
        "> docs/script.schema.json"
    )
    schema = json.loads(committed)
    assert "identification" in schema["required"]
