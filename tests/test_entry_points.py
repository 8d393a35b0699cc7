"""The entry points spaCy finds are exactly those setup.cfg declares, and each one loads the
object spaCy's registry holds under its name. A typo on either side, or a stale install
(`pip install -e .` not rerun after setup.cfg changed), fails here."""
import configparser
import re
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Dict, List

import pytest
from spacy.util import registry

SETUP_CFG = Path(__file__).resolve().parents[1] / "setup.cfg"
DISTRIBUTION = "spacy-rsft"
# Entry-point group -> spaCy registry it feeds.
GROUPS = {
    "spacy_factories": "factories",
    "spacy_architectures": "architectures",
    "spacy_readers": "readers",
    "spacy_scorers": "scorers",
    "spacy_misc": "misc",
}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> Dict[str, Dict[str, str]]:
    """setup.cfg's [options.entry_points]: group -> {name: "module:attr"}."""
    parser = configparser.ConfigParser()
    parser.optionxform = str  # type: ignore[assignment]  # names are case-sensitive
    parser.read(SETUP_CFG, encoding="utf8")
    groups: Dict[str, Dict[str, str]] = {}
    for group, lines in parser["options.entry_points"].items():
        entries = {}
        for line in filter(None, (line.strip() for line in lines.splitlines())):
            name, _, value = line.partition("=")
            assert name.strip() not in entries, f"{group}: {name.strip()} is declared twice"
            entries[name.strip()] = value.strip()
        groups[group] = entries
    return groups


def installed(group: str) -> List[EntryPoint]:
    """The group's entry points that the installed spacy-rsft distribution provides."""
    return [ep for ep in entry_points(group=group) if ep.dist is not None and _normalized(ep.dist.name) == DISTRIBUTION]


def test_every_spacy_group_is_checked():
    unchecked = {group for group in declared() if group.startswith("spacy_")} - set(GROUPS)
    assert not unchecked, f"add {sorted(unchecked)} to GROUPS with the registry each one feeds"


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_installed_entry_points_match_setup_cfg(group):
    expected = declared().get(group, {})
    assert expected, f"setup.cfg declares no {group} entry points"
    found = {ep.name: ep.value for ep in installed(group)}
    assert found == expected, f"installed {group} differ from setup.cfg: rerun `pip install -e .`?"


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_entry_points_load_the_registered_objects(group):
    for ep in installed(group):
        loaded = ep.load()
        assert registry.get(GROUPS[group], ep.name) is loaded, f"{group} {ep.name}: {ep.value} is not what spaCy registered"
