"""Error pages are lumaweb's own and show no stack trace."""

from django.test import Client, RequestFactory
from django.views.defaults import server_error

from tests.factories import make_user


def test_not_found_page_is_branded_with_a_way_back(db):
    client = Client()
    client.force_login(make_user())
    response = client.get("/generations/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404
    assert b"Back to the gallery" in response.content
    assert b"Traceback" not in response.content


def test_server_error_page_reassures_and_shows_no_trace(db):
    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    assert b"Nothing you paid for is lost" in response.content
    assert b"Traceback" not in response.content
