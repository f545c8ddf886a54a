"""Errors that the CLI turns into one line on stderr, without a traceback."""


class LadartsError(Exception):
    """A failure the user can act on. ``exit_code`` 2 is bad input or arguments, 1 a runtime failure."""

    exit_code = 1


class UserInputError(LadartsError, ValueError):
    """Bad input: a malformed genotype, an unknown name, a wrong file. Exit code 2."""

    exit_code = 2


class LadartsWarning(UserWarning):
    """Something the user should know that does not stop the command; the CLI shows it as one line, always."""
