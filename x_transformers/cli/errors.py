"""Errors the command line reports as one clear line (no traceback), the optional import of
``safetensors``, and reading a user's text file with such an error instead of a traceback."""

from __future__ import annotations

from pathlib import Path


class CLIError(Exception):
    """A problem the user can fix; ``xtransformers`` prints it and exits with ``exit_code``."""

    exit_code = 2


class ConfigError(CLIError):
    """A configuration file or ``--set`` override is wrong; the message names the file and key."""


class DataError(CLIError):
    """The training or evaluation data cannot be used."""


class CheckpointError(CLIError):
    """A checkpoint is missing, corrupt, truncated or does not fit the model."""


class DivergenceError(CLIError):
    """Training produced a non-finite loss or gradient norm; the run stopped without writing a
    checkpoint of the non-finite state (exit status 3)."""

    exit_code = 3


def import_safetensors():
    """``safetensors.torch``, or a clear error saying how to install the command line's extra."""
    try:
        import safetensors.torch
    except ImportError as error:
        raise CLIError(
            "the xtransformers command line needs the 'safetensors' package for checkpoints: "
            "pip install 'x-transformers[cli]'"
        ) from error
    return safetensors.torch


def read_text_file(path: str | Path, what: str, error: type[CLIError] = CLIError) -> str:
    """The UTF-8 text of a user's file; ``what`` names it ("config file", "--prompt-file"). A
    missing, unreadable or non-UTF-8 file raises ``error`` with one line saying so."""
    shown = repr(str(path))
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise error(f"{what} {shown} does not exist") from None
    except IsADirectoryError:
        raise error(f"{what} {shown} is a folder; expected a text file") from None
    except OSError as failure:
        raise error(f"{what} {shown} cannot be read: {failure.strerror or failure}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as failure:
        raise error(
            f"{what} {shown} is not UTF-8 text (byte 0x{data[failure.start]:02x} at offset "
            f"{failure.start}); save it as UTF-8"
        ) from None
