import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_environment_variable_is_documented():
    settings_source = (ROOT / "config" / "settings.py").read_text()
    names = set(re.findall(r'env_\w+\(\s*"([A-Z][A-Z0-9_]+)"', settings_source))
    documented = (ROOT / "docs" / "configuration.md").read_text()
    assert names, "no env_* calls found"
    missing = sorted(n for n in names if f"`{n}`" not in documented)
    assert not missing, f"undocumented variables: {missing}"
