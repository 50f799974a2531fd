"""Errors meant for users: one sentence that names the file or key and the fix."""


class UserError(Exception):
    """Bad input from the user (config, data, paths). Printed without a stack trace."""
