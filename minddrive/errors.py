"""User-facing errors: the CLI prints these as one line, without a traceback."""


class UserError(Exception):
    """Bad config, data or arguments. The message must name the file/key and what was expected."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`UserError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise UserError(message)
