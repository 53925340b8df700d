"""The access app's domain errors. Each carries a stable code for JSON clients and a
sentence for people; views turn them into a form error, a message or a 4xx."""


class AccessError(Exception):
    code = "access_error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotAllowed(AccessError):
    """The actor may not do this (the policy said no)."""

    code = "not_allowed"


class InvalidTransition(AccessError):
    """The object is not in a state that allows this change."""

    code = "invalid_transition"


class InvalidInput(AccessError):
    """The request's data is unusable."""

    code = "invalid_input"
