"""The admin's form for an API key: origins are checked and written one per line."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.core.exceptions import ValidationError

from apikeys.models import ApiKey


def normalise_origin(text: str) -> str:
    """``https://App.example.com/`` -> ``https://app.example.com``; raise if not an origin."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"{text!r} is not an origin like https://app.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValidationError(f"{text!r} has more than scheme, host and port")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


class AsciiIntegerField(forms.IntegerField):
    """An integer written in ASCII digits only (``int()`` would also take ``"\u0661"``)."""

    def to_python(self, value: Any) -> int | None:
        """Refuse anything but optional surrounding spaces around ASCII digits."""
        if value not in self.empty_values:
            text = str(value).strip()
            digits = text[1:] if text[:1] in "+-" else text
            if not (digits.isascii() and digits.isdigit()):
                raise ValidationError(self.error_messages["invalid"], code="invalid")
        result: int | None = super().to_python(value)
        return result


class ApiKeyForm(forms.ModelForm):
    """Edit one key; ``allowed_origins`` is normalised to one origin per line."""

    class Meta:
        model = ApiKey
        fields = ["name", "key", "active", "concurrent_limit", "allow_discovery",
                  "allowed_origins", "rate_limit", "rate_burst", "queue_limit",
                  "previous_secret_expires", "notes"]
        field_classes = {name: AsciiIntegerField for name in (
            "concurrent_limit", "rate_limit", "rate_burst", "queue_limit")}

    def clean_allowed_origins(self) -> str:
        """Each line must be an origin; duplicates go."""
        lines = str(self.cleaned_data.get("allowed_origins", "")).splitlines()
        origins = [normalise_origin(line) for line in lines if line.strip()]
        return "\n".join(dict.fromkeys(origins))


class BanForm(forms.Form):
    """Ban one address for a number of minutes (the admin's live-peers page)."""

    #: The longest ban the form takes: 30 days.
    MAX_MINUTES = 30 * 24 * 60

    address = forms.CharField(max_length=45, help_text="An IPv4 or IPv6 address.")
    minutes = AsciiIntegerField(min_value=1, max_value=MAX_MINUTES, initial=60,
                                help_text="How long the ban lasts.")
    reason = forms.CharField(max_length=100, required=False)

    def __init__(self, *args: Any, own_address: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.own_address = own_address

    def clean_address(self) -> str:
        """The address in its canonical text form; never the admin's own."""
        text = str(self.cleaned_data["address"]).strip()
        try:
            address = str(ipaddress.ip_address(text))
        except ValueError:
            raise ValidationError(f"{text!r} is not an IPv4 or IPv6 address") from None
        if address == self.own_address:
            raise ValidationError("That is the address of this admin session: banning it "
                                  "would lock you out of the admin.")
        return address
