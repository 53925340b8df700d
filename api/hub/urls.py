"""Routes of the hub protocol, mounted at the site root (the client builds its own paths)."""

from api.hub import access_requests, repos

urlpatterns = access_requests.urlpatterns + repos.urlpatterns
