"""aggregator/config: layered settings, and a bad one named by its key."""

import pytest

from emo7ion.aggregator import config
from emo7ion.core.settings import ConfigError


def test_layers(tmp_path):
    path = tmp_path / "aggregator.toml"
    path.write_text('broker = "mqtt://10.0.0.5:1883"\nshared_group = "central"\nport = 9000\n')
    loaded = config.load(path, {"port": "9100"}, environ={"EMO7ION_AGG__DB": "postgresql://u@h/db"})
    assert loaded.port == 9100 and loaded.db == "postgresql://u@h/db"
    assert loaded.subscription == "$share/central/emo7ion/v1/+/+/+"


@pytest.mark.parametrize("text, key", [
    ('brokr = "mqtt://x"', "brokr"), ('broker = "http://x"', "broker"), ("port = 70000", "port"),
    ('db = "mysql://x"', "db"), ('shared_group = "a/b"', "shared_group"), ("mood_window_s = 0", "mood_window_s"),
    ('port = "eighty"', "port"),
])
def test_bad_settings_are_named(tmp_path, text, key):
    path = tmp_path / "aggregator.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=key):
        config.load(path, environ={})
