"""Errors a user can cause and fix: printed as one line, never a traceback."""


class MinivmError(Exception):
    """Bad input: a missing file, a wrong image, an impossible machine.

    The CLI prints `minivm: <message>` on stderr and exits with status 2.
    """
