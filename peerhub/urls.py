"""URL routes: the admin and the dashboard.

The PeerServer's HTTP API under its path is not Django's: ``signalling.http_api`` serves
it as plain ASGI applications (see ``peerhub.asgi``).
"""

from django.contrib import admin
from django.urls import path

from apikeys.dashboard import dashboard

urlpatterns = [
    path("admin/", admin.site.urls),
    path("dashboard/", dashboard, name="peerhub-dashboard"),
]
