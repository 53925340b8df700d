"""Service functions of the access app, by topic. Import them from their module:
``from access.services.applications import application_submit``."""
