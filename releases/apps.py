from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releases"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from allauth.account.signals import email_confirmed

        from releases.members import on_email_confirmed

        # An address invited to an organization becomes a member once its owner verifies it.
        email_confirmed.connect(on_email_confirmed, dispatch_uid="releases.invitations_on_email_confirmed")
