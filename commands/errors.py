"""The command line's own errors: bad flags or arguments, and --format templates.

Their exit codes are docker's CLI's: a flag it cannot parse (unknown, missing its
value, a value of the wrong form) exits 125, as pflag's errors do through cobra's
FlagErrorFunc; a wrong number of arguments, an unknown command, or options that do
not go together exit 1, like any other error it reports.
"""

from __future__ import annotations

from imagefmt import errors


class UsageError(Exception):
    """Bad arguments or options that do not go together: a one-line message, exit 1."""

    exit_code = 1
    prefixed = True  # printed after "Error: "


class FlagError(UsageError):
    """A flag docker's CLI would refuse while parsing it: unknown, without its value,
    or a value of the wrong form (exit 125)."""

    exit_code = 125


class TemplateError(errors.DockyardError):
    """A --format template that does not apply to the object (docker exits 1)."""
