"""One module per platform's wire format; :data:`PROVIDERS` maps the URL segment to it."""

from __future__ import annotations

from webhooks.providers.base import Provider
from webhooks.providers.generic import Generic
from webhooks.providers.google_ads import GoogleAds
from webhooks.providers.hubspot import Hubspot
from webhooks.providers.linkedin import Linkedin
from webhooks.providers.meta import Meta

PROVIDERS: dict[str, Provider] = {
    p.name: p for p in (Meta(), GoogleAds(), Linkedin(), Hubspot(), Generic())
}

__all__ = ["PROVIDERS", "Provider"]
