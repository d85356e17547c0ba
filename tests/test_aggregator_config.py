"""aggregator/config: layered settings, and a bad one named by its key."""

import pytest

from emo7ion.aggregator import config
from emo7ion.core.service.settings import ConfigError


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
    ('[broker]\nurl = "http://x"', "broker.url"), ('[broker]\nusername = "u"\npasword = "x"', "broker.pasword"),
    ('ca_file = "/nonexistent/ca.crt"', "broker.ca_file"), ("[broker]\nreconnect_min_s = 0", "broker.reconnect_min_s"),
    ('username = "a"\n[broker]\nusername = "b"', "username and broker.username are both set"),
])
def test_bad_settings_are_named(tmp_path, text, key):
    path = tmp_path / "aggregator.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=key):
        config.load(path, environ={})


def test_broker_table_and_the_old_flat_keys_load_the_same(tmp_path):
    """The broker settings are the shared core.broker_connection.BrokerSettings ([broker] table); the flat spelling
    from before it (broker = URL, username, password, ca_file; their EMO7ION_AGG__ variables and flags) still loads."""
    ca = tmp_path / "ca.crt"
    ca.write_text("not read at load\n")
    old = tmp_path / "old.toml"
    old.write_text(f'broker = "mqtts://mqtt.example.org"\nusername = "central"\npassword = "pw"\nca_file = "{ca}"\n')
    new = tmp_path / "new.toml"
    new.write_text(f'[broker]\nurl = "mqtts://mqtt.example.org"\nusername = "central"\npassword = "pw"\n'
                   f'ca_file = "{ca}"\n')
    from_old, from_new = config.load(old, environ={}), config.load(new, environ={})
    assert from_old.broker == from_new.broker
    assert (from_old.broker.host, from_old.broker.port, from_old.broker.tls) == ("mqtt.example.org", 8883, True)
    assert from_old.broker.username == "central" and from_old.identity == "central"
    broker = from_old.broker
    assert (broker.keepalive_s, broker.reconnect_min_s, broker.reconnect_max_s) == (30, 1, 30)  # as before
    from_env = config.load(None, environ={"EMO7ION_AGG__BROKER": "mqtt://10.0.0.5:1999", "EMO7ION_AGG__USERNAME": "u",
                                          "EMO7ION_AGG__PASSWORD": "p"})
    assert (from_env.broker.port, from_env.broker.username, from_env.broker.password) == (1999, "u", "p")
    table = config.load(None, environ={"EMO7ION_AGG__BROKER__URL": "mqtt://10.0.0.5:1999",
                                       "EMO7ION_AGG__BROKER__KEEPALIVE_S": "10"})
    assert (table.broker.port, table.broker.keepalive_s) == (1999, 10)
    with pytest.raises(ConfigError, match="EMO7ION_AGG__BROKER__URL"):  # a bare URL and the table's entries
        config.load(None, environ={"EMO7ION_AGG__BROKER": "mqtt://x", "EMO7ION_AGG__BROKER__KEEPALIVE_S": "10"})
    flags = config.load(old, {"broker": "mqtt://127.0.0.1:1884", "username": "flagged"}, environ={})
    assert (flags.broker.port, flags.broker.tls, flags.broker.username, flags.broker.password) == \
        (1884, False, "flagged", "pw")
