"""Errors of board profiles and deployment, each with a stable ``code`` and a CLI exit code.

Codes (stable): ``bad_profile``, ``unknown_board``, ``port_not_found``, ``board_busy``,
``mpy_mismatch``, ``board_exec``, ``compile_failed``, ``hello_failed``, ``bad_key``,
``ecu_exists``.
"""

from __future__ import annotations

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_NOT_FOUND = 4
EXIT_LINK = 5


class DeployError(Exception):
    """Base of everything ``otalink device ...`` reports as a clear error."""

    code = "deploy_failed"
    exit_code = EXIT_FAILURE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str | int]:
        return {"code": self.code, "message": self.message, "exit": self.exit_code}


class ProfileError(DeployError):
    """A board profile that is missing, malformed or inconsistent."""

    code = "bad_profile"
    exit_code = EXIT_USAGE


class UnknownBoardError(ProfileError):
    """No ``boards/<name>/board.json`` for the requested name."""

    code = "unknown_board"
    exit_code = EXIT_NOT_FOUND


class PortNotFoundError(DeployError):
    """The serial port cannot be opened (wrong path, unplugged, permissions)."""

    code = "port_not_found"
    exit_code = EXIT_LINK


class BoardBusyError(DeployError):
    """The port opened but no MicroPython REPL answered (busy, not MicroPython, or wedged)."""

    code = "board_busy"
    exit_code = EXIT_LINK


class MpyMismatchError(DeployError):
    """The board's MicroPython cannot load our .mpy files (too old, or another architecture)."""

    code = "mpy_mismatch"
    exit_code = EXIT_REFUSED


class BoardExecError(DeployError):
    """Code run on the board raised; ``detail`` holds the board's traceback."""

    code = "board_exec"
    exit_code = EXIT_FAILURE


class CompileError(DeployError):
    """mpy-cross failed on a module."""

    code = "compile_failed"
    exit_code = EXIT_FAILURE


class HelloError(DeployError):
    """The agent did not answer HELLO on its line after start."""

    code = "hello_failed"
    exit_code = EXIT_LINK


class KeyFileError(DeployError):
    """A key file that cannot be read or has the wrong shape."""

    code = "bad_key"
    exit_code = EXIT_USAGE


class EcuExistsError(DeployError):
    """Provisioning would replace an existing ECU record without ``--force``."""

    code = "ecu_exists"
    exit_code = EXIT_REFUSED
