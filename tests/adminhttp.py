"""A logged-in (or trying) admin user over real HTTP: cookies, CSRF, forms."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request

from tests.servers import LiveServer


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class AdminHTTP:
    """One browser-like client of ``server``'s admin."""

    def __init__(self, server: LiveServer, forwarded_for: str | None = None) -> None:
        self.base = f"http://{server.host}:{server.port}"
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar),
                                                  NoRedirect())
        self.forwarded_for = forwarded_for

    def request(self, method: str, path: str, form: dict[str, object] | None = None
                ) -> tuple[int, dict[str, str], str]:
        """``(status, headers, body)``; ``form`` values may be lists (repeated fields)."""
        data = None
        headers = {"Referer": self.base + path}
        if self.forwarded_for:
            headers["X-Forwarded-For"] = self.forwarded_for
        if form is not None:
            form = {"csrfmiddlewaretoken": self.csrf(), **form}
            data = urllib.parse.urlencode(form, doseq=True).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=headers)
        try:
            with self.opener.open(req, timeout=20) as resp:
                return resp.status, dict(resp.headers), resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read().decode()

    def csrf(self) -> str:
        """The CSRF cookie's value (fetching the login page first if there is none)."""
        for cookie in self.jar:
            if cookie.name == "csrftoken":
                return str(cookie.value)
        self.request("GET", "/admin/login/")
        for cookie in self.jar:
            if cookie.name == "csrftoken":
                return str(cookie.value)
        raise AssertionError("no CSRF cookie from the login page")

    def login(self, username: str, password: str) -> int:
        """POST the login form; the status (302: logged in, 200: refused, 429: throttled)."""
        status, _, _ = self.request("POST", "/admin/login/?next=/admin/", {
            "username": username, "password": password, "next": "/admin/"})
        return status


def hidden_inputs(page: str) -> dict[str, str]:
    """``name: value`` of a page's hidden inputs."""
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
