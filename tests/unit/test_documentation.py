"""The README and the user guide name every setting the service reads."""

import pytest

from app.config import Settings
from tests.conftest import ROOT

SETTINGS = sorted(name.upper() for name in Settings.model_fields)


@pytest.mark.parametrize("document", ["README.md", "docs/configuration.md"])
def test_every_setting_is_documented(document):
    text = (ROOT / document).read_text()
    missing = [name for name in SETTINGS if f"`{name}`" not in text]
    assert not missing, f"{document} does not document {missing}"
