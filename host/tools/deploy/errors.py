"""Errors of board profiles and deployment (the ``deploy.*`` codes of the tool family).

Codes (stable): ``deploy.failed``, ``deploy.bad_profile``, ``deploy.unknown_board``,
``deploy.port_not_found``, ``deploy.board_busy``, ``deploy.mpy_mismatch``, ``deploy.board_exec``,
``deploy.compile_failed``, ``deploy.hello_failed``, ``config.bad_key`` (``KeyFileError``, as
``keys.BadKeyError``), ``deploy.ecu_exists``. Their exit codes (and HTTP statuses) are rows of the
one table, ``otalink.host.errors.OUTCOMES``.
"""

from __future__ import annotations

from otalink.host.errors import ErrorBody, ToolError, exit_code


class DeployError(ToolError):
    """Base of everything ``otalink device ...`` reports as a clear error."""

    code = "deploy.failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def exit_code(self) -> int:
        """The ``otalink`` exit code of this error (the one table's)."""
        return exit_code(self)

    def to_dict(self) -> ErrorBody:
        return {"code": self.code, "message": self.message, "exit": self.exit_code}


class ProfileError(DeployError):
    """A board profile that is missing, malformed or inconsistent."""

    code = "deploy.bad_profile"


class UnknownBoardError(ProfileError):
    """No ``boards/<name>/board.json`` for the requested name."""

    code = "deploy.unknown_board"


class PortNotFoundError(DeployError):
    """The serial port cannot be opened (wrong path, unplugged, permissions)."""

    code = "deploy.port_not_found"


class BoardBusyError(DeployError):
    """The port opened but no MicroPython REPL answered (busy, not MicroPython, or wedged)."""

    code = "deploy.board_busy"


class MpyMismatchError(DeployError):
    """The board's MicroPython cannot load our .mpy files (too old, or another architecture)."""

    code = "deploy.mpy_mismatch"


class BoardExecError(DeployError):
    """Code run on the board raised; ``detail`` holds the board's traceback."""

    code = "deploy.board_exec"


class CompileError(DeployError):
    """mpy-cross failed on a module."""

    code = "deploy.compile_failed"


class HelloError(DeployError):
    """The agent did not answer HELLO on its line after start."""

    code = "deploy.hello_failed"


class KeyFileError(DeployError):
    """A key file that cannot be read or has the wrong shape."""

    code = "config.bad_key"


class EcuExistsError(DeployError):
    """Provisioning would replace an existing ECU record without ``--force``."""

    code = "deploy.ecu_exists"
