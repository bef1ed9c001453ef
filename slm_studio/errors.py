"""The one exception type that front ends show as a plain message (CLI: exit code 2; app: a dialog)."""


class UserError(Exception):
    """Bad input or an impossible setting: the message names the problem in one line."""


class Cancelled(Exception):
    """Raised inside a stage when its CancelToken was set; the stage has saved what it could."""
