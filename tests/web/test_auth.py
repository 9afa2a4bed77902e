"""With an API key on, the page asks for it once (a login form) and keeps a signed session cookie; the
cookie opens the pages and the page's own API calls, the key itself still opens the API."""

from __future__ import annotations

import time

from dataflywheel.api.session import COOKIE, PAGE_HEADER, session_token, valid_session
from tests.web.conftest import API_KEY, Site


def test_pages_redirect_to_the_login_form_and_parts_answer_401(keyed_site: Site) -> None:
    c = keyed_site.client
    page = c.get(f"/jobs/{keyed_site.job_id}?verdict=correct", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == f"/login?next=%2Fjobs%2F{keyed_site.job_id}%3Fverdict%3Dcorrect"
    assert c.get("/partials/jobs").status_code == 401
    assert c.get(f"/jobs/{keyed_site.job_id}/report.html", follow_redirects=False).status_code == 303
    assert c.get("/api/jobs").status_code == 401
    form = c.get("/login?next=/jobs")
    assert form.status_code == 200 and 'type="password"' in form.text
    assert c.get("/static/app.css").status_code == 200  # assets are public


def test_a_wrong_key_is_refused_and_the_right_one_opens_pages_and_api(keyed_site: Site) -> None:
    c = keyed_site.client
    wrong = c.post("/login", data={"key": "guess", "next": "/"}, follow_redirects=False)
    assert wrong.status_code == 401 and "not the API key this server has" in wrong.text and COOKIE not in wrong.cookies
    right = c.post("/login", data={"key": API_KEY, "next": f"/jobs/{keyed_site.job_id}"}, follow_redirects=False)
    assert right.status_code == 303 and right.headers["location"] == f"/jobs/{keyed_site.job_id}"
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and API_KEY not in cookie
    assert c.get(f"/jobs/{keyed_site.job_id}").status_code == 200
    assert c.get("/api/jobs").status_code == 200
    assert "Log out" in c.get("/").text


def test_a_change_with_the_cookie_needs_the_page_header(keyed_site: Site) -> None:
    c = keyed_site.client
    c.post("/login", data={"key": API_KEY, "next": "/"})
    job = keyed_site.store.create_job("primary_assistant", "northwind-1", {})
    refused = c.post(f"/api/jobs/{job.id}/cancel")
    assert refused.status_code == 403 and PAGE_HEADER in refused.json()["detail"]
    assert c.post(f"/api/jobs/{job.id}/cancel", headers={PAGE_HEADER: "1"}).json()["status"] == "cancelled"


def test_the_key_as_bearer_still_works_and_a_bad_bearer_is_not_rescued_by_the_cookie(keyed_site: Site) -> None:
    c = keyed_site.client
    assert c.get("/api/jobs", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    assert (
        c.get(f"/jobs/{keyed_site.job_id}/report.html", headers={"Authorization": f"Bearer {API_KEY}"}).status_code
        == 200
    )
    c.post("/login", data={"key": API_KEY, "next": "/"})
    assert c.get("/api/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_login_never_sends_the_browser_to_another_host(keyed_site: Site) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "jobs"):
        reply = keyed_site.client.post("/login", data={"key": API_KEY, "next": target}, follow_redirects=False)
        assert reply.headers["location"] == "/"


def test_logout_ends_the_session(keyed_site: Site) -> None:
    c = keyed_site.client
    c.post("/login", data={"key": API_KEY, "next": "/"})
    out = c.post("/logout", follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert c.get("/", follow_redirects=False).status_code == 303


def test_session_tokens_expire_and_are_bound_to_the_key() -> None:
    now = time.time()
    token = session_token("k1", now=now, max_age_s=60)
    assert valid_session(token, "k1", now=now + 59)
    assert not valid_session(token, "k1", now=now + 61)
    assert not valid_session(token, "k2", now=now)
    expires, _, signature = token.partition(".")
    assert not valid_session(f"{int(expires) + 3600}.{signature}", "k1", now=now)
    assert not valid_session("garbage", "k1") and not valid_session(None, "k1")


def test_without_a_key_the_login_form_just_goes_on(site: Site) -> None:
    reply = site.client.get("/login?next=/jobs/x", follow_redirects=False)
    assert reply.status_code == 303 and reply.headers["location"] == "/jobs/x"
    assert "Log out" not in site.client.get("/").text
