"""Strict parsing of every number and token from outside (issue 13, item 4): whatever
the text, the parsers answer with a value or their own named error, never another
exception (which a server turns into 1011 or HTTP 500)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from hypothesis import example, given
from hypothesis import strategies as st

from apikeys.forms import AsciiIntegerField
from peerhub.env import ImproperEnvironment, env_int
from peerhub.proxy import BadProxyHeader, client_address, parse_trusted
from signalling.protocol import parse_handshake
from signalling.tokens import is_ascii_number, verify_token

digits_anywhere = st.text(alphabet=st.characters(categories=["Nd", "No", "Nl"]), min_size=1,
                          max_size=6)
TRUSTED = parse_trusted("127.0.0.0/8")


env_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"],
                                         blacklist_characters="\x00"), max_size=20)


@example(text="  ")
@example(text="\u0661\u0662")
@example(text=" 12 ")
@given(text=env_text | digits_anywhere)
def test_env_int_takes_ascii_digits_only(text: str) -> None:
    import os

    os.environ["PEERHUB_TEST_NUMBER"] = text
    try:
        value = env_int("PEERHUB_TEST_NUMBER", 7, minimum=-10**30)
    except ImproperEnvironment:
        stripped = text.strip().removeprefix("-")
        assert text != "" and not (stripped.isascii() and stripped.isdigit())
    else:
        assert value == (int(text) if text else 7)
    finally:
        del os.environ["PEERHUB_TEST_NUMBER"]


@given(text=st.text(max_size=12) | digits_anywhere)
def test_admin_number_fields_take_ascii_digits_only(text: str) -> None:
    field = AsciiIntegerField(min_value=0, required=False)
    try:
        value = field.clean(text)
    except ValidationError:
        return
    assert value is None or (text.strip().lstrip("+").isascii() and value == int(text))


@given(expiry=digits_anywhere, sig=st.text(max_size=50))
def test_unicode_digit_expiries_never_verify(expiry: str, sig: str) -> None:
    if not expiry.isascii():
        assert not is_ascii_number(expiry)
        assert verify_token("s", "k", "id", f"v1.{expiry}.{sig}", 0) is False


@given(query=st.binary(max_size=200))
def test_any_handshake_query_parses_or_is_refused(query: bytes) -> None:
    result = parse_handshake(query)
    assert result is None or (result.key and result.id and result.token)


@given(xff=st.lists(st.binary(max_size=40), max_size=3),
       real=st.lists(st.binary(max_size=40), max_size=2))
def test_any_proxy_header_gives_an_address_or_the_named_error(xff: list[bytes],
                                                              real: list[bytes]) -> None:
    try:
        assert isinstance(client_address("127.0.0.1", xff, real, TRUSTED), str)
    except BadProxyHeader:
        pass
