"""What a transport raises; `kvrun` and `kvrun.http` turn these into their public errors."""


class SecretFailure(Exception):
    """The host answered a secret call with an error of ``kind``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class Refused(Exception):
    """The host refused a request before sending anything, for ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Failed(Exception):
    """A request was sent (or tried) and no whole answer came: ``code`` names why."""

    def __init__(self, code: str, detail=None) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


class BadHeader(ValueError):
    """A header the request cannot carry."""
