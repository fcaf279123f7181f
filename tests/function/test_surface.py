"""Startup validation and the routes the app must not have."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from function.app import create_app
from function.settings import Settings


@pytest.mark.parametrize("level", ["verbose", "trace", "", "info;rm", "10"])
def test_log_level_is_validated_at_startup(monkeypatch, level):
    monkeypatch.setenv("LOG_LEVEL", level or " ")
    with pytest.raises(ValidationError, match="LOG_LEVEL must be one of debug, info, warning, error, critical"):
        Settings()


@pytest.mark.parametrize(("given", "level"), [("WARNING", "warning"), (" debug ", "debug"), ("Error", "error")])
def test_log_levels_are_case_insensitive(monkeypatch, given, level):
    monkeypatch.setenv("LOG_LEVEL", given)
    assert Settings().log_level == level


def test_no_static_route_serves_the_working_directory(make_settings, published, tmp_path, monkeypatch):
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "x.txt").write_text("not for you")
    monkeypatch.chdir(tmp_path)
    app = create_app(make_settings(model_uri=f"{published}/lin"))
    assert not [rule.rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/static")]
    r = app.test_client().get("/static/x.txt")
    assert r.status_code == 404 and "not for you" not in r.get_data(as_text=True)
