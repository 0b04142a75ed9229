"""The plugin table (modules/plugins.py) is the one list of plugins: config.py accepts exactly its
names, and each entry agrees with what the fake DevLake says of that plugin (`sandbox/plugins.py`)."""
from __future__ import annotations

import pytest

from config import ConfigError, load_settings
from modules.plugins import PLUGINS, plugin_of
from sandbox import plugins as fake

ACCEPTED = load_settings({"DEVLAKE_URL": "http://d:8080"}).plugins  # PLUGINS unset: every known plugin


def test_every_plugin_config_accepts_has_an_entry():
    assert ACCEPTED and set(ACCEPTED) == set(PLUGINS)
    for name in ACCEPTED:
        assert load_settings({"DEVLAKE_URL": "http://d:8080", "PLUGINS": name}).plugins == (name,)
        assert plugin_of(name) is PLUGINS[name]


def test_a_plugin_without_an_entry_is_refused_by_config():
    with pytest.raises(ConfigError, match="PLUGINS names argocd"):
        load_settings({"DEVLAKE_URL": "http://d:8080", "PLUGINS": "github,argocd"})


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_each_entry_agrees_with_the_fake_devlake(name):
    entry = PLUGINS[name]
    assert entry.scope_id_field == fake.SCOPE_ID_FIELD[name]
    assert entry.patterns == ("deploymentPattern" in fake.SCOPE_CONFIG_DEFAULTS[name])
    assert name in fake.CONNECTION_DEFAULTS
    assert bool(entry.group_listing_cap) == bool(entry.capped_hint)  # a cut listing is always explained


def test_an_unknown_plugin_reads_like_config_ui_reads_it():
    assert plugin_of("webhook").scope_id_field == "id" and plugin_of("webhook").entities == ()
