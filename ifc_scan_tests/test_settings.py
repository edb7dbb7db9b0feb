"""The settings are declared classes a reader and a type checker can follow (ifc_scan/settings.py `Settings`,
ifc_scan/defs/resources.py `IfcScanSettings`), still from the one settings table, and they agree."""

from __future__ import annotations

import inspect
import typing
from dataclasses import fields

from ifc_scan.defs.resources import IfcScanSettings, settings_from_env
from ifc_scan.settings import ENV, Settings


def test_both_settings_classes_are_written_out_in_their_modules():
    # a class made with type(...) or make_dataclass has no source a reader (or inspect) can find
    for cls, module in ((Settings, "ifc_scan/settings.py"), (IfcScanSettings, "ifc_scan/defs/resources.py")):
        src = inspect.getsource(cls)
        assert f"\nclass {cls.__name__}" in "\n" + src, cls
        assert inspect.getsourcefile(cls).endswith(module)
        assert all(f"    {name}: str" in src for name in ENV), cls


def test_the_dagster_resource_has_the_settings_fields_and_defaults():
    hints = typing.get_type_hints(IfcScanSettings)
    assert [f.name for f in fields(Settings)] == list(ENV) == [n for n in IfcScanSettings.model_fields]
    assert all(hints[name] is str for name in ENV)
    for name, (_var, default) in ENV.items():
        info = IfcScanSettings.model_fields[name]
        if name in ("landing", "warehouse", "reports"):        # a resource must name them
            assert info.is_required(), name
        else:
            assert info.default == default, name


def test_each_setting_comes_from_its_variable_else_its_default(monkeypatch):
    for _name, (var, _default) in ENV.items():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("IFC_SCAN_TICKETS_LABEL", "vuln-triage")
    monkeypatch.setenv("IFC_SCAN_WAREHOUSE", "/srv/ifc/w.duckdb")
    monkeypatch.setenv("IFC_SCAN_POLICY", "")                  # empty: the default
    s = Settings.from_env()
    assert (s.tickets_label, s.warehouse, s.policy, s.github_api) == (
        "vuln-triage", "/srv/ifc/w.duckdb", "", "https://api.github.com")
    resource = settings_from_env()
    assert resource.github_api == "https://api.github.com" and resource.tickets_query == ""
