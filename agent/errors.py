"""The one base class of the errors a user can cause (bad file, bad flag, bad model).

The CLI prints these as one line and exits non-zero; anything else is a bug and keeps its
traceback.
"""


class MouseguardError(Exception):
    pass


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (X and DBus errors span several), or its type's name."""
    return " ".join(str(exc).split()) or type(exc).__name__
