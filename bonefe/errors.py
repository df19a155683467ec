"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class BonefeError(Exception):
    """A problem with the user's input or environment, reported without a traceback."""
