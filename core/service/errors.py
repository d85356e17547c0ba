"""Failures that are the user's to fix (credentials a broker refuses, a camera library that is not installed, a
port another program holds): the command prints them as one line and exits with status 2, no traceback."""


class UserError(Exception):
    """Raised with a message that names the file, flag or value at fault and what to do about it."""
