"""The URL settings (DEVLAKE_URL, DEVLAKE_UI_URL) checked, and any URL shown without its secrets.

A URL can carry a password in its user info (config-ui behind basic auth) and a token in its
query; `without_password` is how the log, the status page and the doctor show one, and
`shown_in_message` how a configuration error quotes one.
"""
from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from utils.env_values import Invalid


def shown_in_message(url: str) -> str:
    """A URL as an error message may show it: no password, no query or fragment (tokens hide there)."""
    try:
        parts = urlsplit(without_password(url))
    except ValueError:
        return "<unparsable URL>"
    hidden = "?…" if parts.query or parts.fragment else ""
    return parts._replace(query="", fragment="").geturl() + hidden


def without_password(url: str) -> str:
    """The URL with the password of its user info (http://user:password@host) replaced by ***.

    requests sends such a URL's user info as basic auth (config-ui behind nginx's
    basic auth); the URL itself is logged at start and shown on the status page.
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def _url_parts(value: str) -> SplitResult:
    """`value` split, refused unless it is an http(s) URL with a host and a valid port."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError for a port that is no number or past 65535
    except ValueError as exc:  # e.g. "http://[::1": "Invalid IPv6 URL"
        raise Invalid(f" is not a valid URL ({exc}): expected an http:// or https:// URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"={shown_in_message(value)!r} is not valid: expected an http:// or https:// URL")
    return parts


def parse_url(value: str) -> str:
    """DEVLAKE_URL: an http(s) URL without query or fragment, its trailing `/` dropped."""
    parts = _url_parts(value)
    if parts.query or parts.fragment:
        raise Invalid(f"={shown_in_message(value)!r} is not valid: it must not have a query or fragment")
    return value.rstrip("/")


def parse_ui_url(value: str) -> str:
    """DEVLAKE_UI_URL: as DEVLAKE_URL, and without a password either."""
    parts = _url_parts(value)
    if parts.query or parts.fragment:
        raise Invalid(f"={shown_in_message(value)!r} is not valid: expected an http:// or https:// URL without query")
    if parts.password is not None:  # it becomes a link on the status page, for every viewer to read
        raise Invalid(f"={shown_in_message(value)!r} is not valid: it must not contain a password")
    return value.rstrip("/")
