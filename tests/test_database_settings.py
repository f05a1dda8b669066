"""DATABASE_CONN_MAX_AGE: how long a process keeps its database connection, and
DATABASE_DISABLE_SERVER_SIDE_CURSORS for pgbouncer (docs/SCALING.md).
The settings module is loaded in a fresh process with the variables set."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

POSTGRES = "postgres://lumaweb:pw@db.internal:5432/lumaweb"


def loaded(**variables: str) -> dict:
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps(s.DATABASES['default']))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}
    env.update(variables, DJANGO_SETTINGS_MODULE="lumaweb.settings")
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"DATABASE_URL": POSTGRES}, 60),
        ({"DATABASE_URL": POSTGRES, "DATABASE_CONN_MAX_AGE": "0"}, 0),
        ({"DATABASE_URL": POSTGRES, "DATABASE_CONN_MAX_AGE": "600"}, 600),
        # SQLite closes after each request whatever is asked (one file, several processes)
        ({"DATABASE_CONN_MAX_AGE": "600"}, 0),
    ],
)
def test_the_connection_age_follows_the_variable(variables, expected) -> None:
    assert loaded(**variables)["CONN_MAX_AGE"] == expected


def test_a_negative_age_stops_start_up_naming_the_variable() -> None:
    code = "import django; django.setup()"
    env = {**os.environ, "DATABASE_URL": POSTGRES, "DATABASE_CONN_MAX_AGE": "-1"}
    env["DJANGO_SETTINGS_MODULE"] = "lumaweb.settings"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "DATABASE_CONN_MAX_AGE" in result.stderr


def test_server_side_cursors_can_be_turned_off_for_pgbouncer() -> None:
    assert loaded(DATABASE_URL=POSTGRES)["DISABLE_SERVER_SIDE_CURSORS"] is False
    on = loaded(DATABASE_URL=POSTGRES, DATABASE_DISABLE_SERVER_SIDE_CURSORS="true")
    assert on["DISABLE_SERVER_SIDE_CURSORS"] is True
