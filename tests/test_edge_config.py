"""edge/config: file < environment < flags, and every bad value named by its key."""

import re

import pytest

from emo7ion.core.service.broker_connection import BrokerSettings
from emo7ion.edge import config as edge_config
from emo7ion.edge.config import ConfigError


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(b"x")
    return str(path)


def write(tmp_path, text: str):
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return path


def test_layers_of_settings(tmp_path, model_file):
    path = write(tmp_path, f"""
venue = "hall-a"
camera = "cam-1"
model = "{model_file}"
window_s = 5
[source]
kind = "images"
path = "{tmp_path}"
[broker]
url = "mqtt://127.0.0.1:1999"
username = "u"
""")
    env = {"EMO7ION_EDGE__BROKER__PASSWORD": "secret", "EMO7ION_EDGE__WINDOW_S": "7.5"}
    config = edge_config.load(path, {"camera": "cam-2"}, environ=env)
    assert (config.venue, config.camera, config.window_s) == ("hall-a", "cam-2", 7.5)
    assert config.broker.port == 1999 and config.broker.password == "secret" and not config.broker.tls
    # the shared broker settings (declared once in core), with the agent's defaults as before
    assert isinstance(config.broker, BrokerSettings) and isinstance(config.broker, edge_config.BrokerConfig)
    assert (config.broker.keepalive_s, config.broker.reconnect_min_s, config.broker.reconnect_max_s,
            config.broker.max_inflight) == (30, 1.0, 60.0, 20)
    assert config.detector["type"]  # the measured default detector is filled in
    assert config.outbox.max_windows == 50_000


@pytest.mark.parametrize("text, key", [
    ('venue = "v"\ncamera = "c"\nwindwo_s = 3', "windwo_s"),
    ('venue = "v"\ncamera = "c"\n[broker]\npasword = "x"', "broker.pasword"),
    ('venue = "v"\ncamera = "c"\nwindow_s = "ten"', "window_s"),
    ('venue = "v"\ncamera = "c"\nwindow_s = 0', "window_s"),
    ('venue = "Bad Venue"\ncamera = "c"', "venue"),
    ('venue = "v"', "camera"),
    ('venue = "v"\ncamera = "c"\n[broker]\nurl = "http://x"', "broker.url"),
    ('venue = "v"\ncamera = "c"\n[source]\nkind = "webcam"', "source.kind"),
    ('venue = "v"\ncamera = "c"\nmin_faces = -1', "min_faces"),
    ('venue = "v"\ncamera = "c"\nmin_people = -1', "min_people"),
    ('venue = "v"\ncamera = "c"\ndetect_every = 0', "detect_every"),
    ('venue = "v"\ncamera = "c"\n[track]\niou = 1.5', "track.iou"),
    ('venue = "v"\ncamera = "c"\n[track]\nmin_frames = 0', "track.min_frames"),
    ('venue = "v"\ncamera = "c"\n[track]\nmax_gap_s = 0', "track.max_gap_s"),
    ('venue = "v"\ncamera = "c"\n[track]\nmax_gap = 2', "track.max_gap"),
    ('venue = "v"\ncamera = "c"\nsource = 3', "source"),
    ('venue = "v"\ncamera = "c"\n[broker]\nreconnect_min_s = 5\nreconnect_max_s = 2', "broker.reconnect_max_s"),
    ('venue = "v"\ncamera = "c"\n[broker]\npassword = "x"', "broker.password"),
])
def test_bad_values_name_their_key(tmp_path, model_file, text, key):
    path = write(tmp_path, f'model = "{model_file}"\n' + text)
    flags = {} if "source" in text else {"source": {"path": str(tmp_path)}}
    with pytest.raises(ConfigError, match=re.escape(key)):
        edge_config.load(path, flags, environ={})


@pytest.mark.parametrize("block, key", [
    ('[detector]\ntype = "nosuch"', "detector.type"),
    ('[detector]\ntype = "centerface"\ntreshold = 0.3', "detector.treshold"),
    ('[detector]\ntype = "centerface"\nthreshold = 1.3', "detector.threshold=1.3"),
    ('[detector]\ntype = "blazeface"\ntiles = "many"', "detector.tiles='many'"),
    ('[detector]\nthreshold = 0.3', "detector.type"),
])
def test_bad_detector_block_fails_at_load_naming_its_key(tmp_path, model_file, block, key):
    path = write(tmp_path, f'model = "{model_file}"\nvenue = "v"\ncamera = "c"\n{block}')
    with pytest.raises(ConfigError, match=re.escape(key)):
        edge_config.load(path, {"source": {"path": str(tmp_path)}}, environ={})


def test_detector_options_merge_across_layers_and_a_bare_name_is_a_type(tmp_path, model_file):
    path = write(tmp_path, f'model = "{model_file}"\nvenue = "v"\ncamera = "c"\n[detector]\ntype = "haar"')
    config = edge_config.load(path, {"source": {"path": str(tmp_path)}},
                              environ={"EMO7ION_EDGE__DETECTOR__MIN_NEIGHBORS": "4"})
    assert config.detector == {"type": "haar", "min_neighbors": "4"}
    config = edge_config.load(path, {"source": {"path": str(tmp_path)}, "detector": "blazeface"}, environ={})
    assert config.detector == {"type": "blazeface"}


def test_missing_model_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="model"):
        edge_config.load(None, {"venue": "v", "camera": "c", "model": str(tmp_path / "none.tflite"),
                                "source": {"path": "x"}}, environ={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        edge_config.load(write(tmp_path, "venue = "), environ={})
    with pytest.raises(ConfigError, match="not found"):
        edge_config.load(tmp_path / "nope.toml", environ={})


def test_deploy_example_config_is_valid(tmp_path, model_file):
    """The example a Pi installer copies to /etc/emo7ion/edge.toml must load (paths aside)."""
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "edge" / "deploy" / "edge.toml.example"
    config = edge_config.load(example, {"model": model_file, "broker": {"ca_file": ""}}, environ={})
    assert config.source.kind == "picamera2" and config.broker.tls and config.broker.port == 8883
    assert config.detector["type"] == "centerface-int8" and config.min_people == 3 and config.min_faces is None
    assert (config.track.max_gap_s, config.track.min_frames, config.detect_every) == (1.0, 3, 1)


def test_old_min_faces_still_loads_as_an_extra_floor_with_a_deprecation_line(tmp_path, model_file, caplog):
    path = write(tmp_path, f'model = "{model_file}"\nvenue = "v"\ncamera = "c"\nmin_faces = 1\n')
    config = edge_config.load(path, {"source": {"path": str(tmp_path)}}, environ={})
    assert (config.min_faces, config.min_people) == (1, 3)  # an old file never lowers the people rule
    assert "min_faces is deprecated" in caplog.text and "min_people=3" in caplog.text
    caplog.clear()
    config = edge_config.load(None, {"venue": "v", "camera": "c", "model": model_file,
                                     "source": {"path": str(tmp_path)}}, environ={})
    assert config.min_faces is None and "deprecated" not in caplog.text
