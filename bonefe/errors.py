"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class BonefeError(Exception):
    """A problem with the user's input or environment, reported without a traceback."""


def require_within(owner: str, spec, ranges: dict[str, tuple[float, float]]) -> None:
    """A BonefeError naming `owner` and the field when a field of `spec` lies outside its closed range."""
    for name, (low, high) in ranges.items():
        value = getattr(spec, name)
        if not low <= value <= high:
            raise BonefeError(f"{owner}: {name} must be between {low:g} and {high:g} (got {value})")
