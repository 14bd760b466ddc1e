"""URL routes: the admin, the dashboard and the PeerServer's HTTP API under its path."""

import re

from django.conf import settings
from django.contrib import admin
from django.urls import path, re_path

from apikeys.dashboard import dashboard
from signalling import views

_P = re.escape(settings.PEERHUB_PATH.lstrip("/"))

urlpatterns = [
    path("admin/", admin.site.urls),
    path("dashboard/", dashboard, name="peerhub-dashboard"),
    re_path(rf"^{_P}$", views.banner),
    re_path(rf"^{_P}(?P<key>[^/]+)/id/?$", views.new_id),
    re_path(rf"^{_P}(?P<key>[^/]+)/peers/?$", views.peers),
    re_path(rf"^{_P}(?P<key>[^/]+)/ice/?$", views.ice_servers),
    re_path(rf"^{_P}(?P<key>[^/]+)/(?P<peer_id>[^/]+)/(?P<token>[^/]+)/id/?$",
            views.legacy_stream),
    re_path(rf"^{_P}(?P<key>[^/]+)/(?P<peer_id>[^/]+)/(?P<token>[^/]+)/"
            r"(?P<action>offer|candidate|answer|leave)/?$", views.legacy_signal),
]
if settings.PEERHUB_PATH != "/":
    urlpatterns.append(re_path(rf"^{re.escape(settings.PEERHUB_PATH.strip('/'))}$", views.banner))
