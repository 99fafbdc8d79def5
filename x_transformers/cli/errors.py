"""Errors the command line reports as one clear line (no traceback), and the optional import of
``safetensors``."""

from __future__ import annotations


class CLIError(Exception):
    """A problem the user can fix; ``xtransformers`` prints it and exits with status 2."""


class ConfigError(CLIError):
    """A configuration file or ``--set`` override is wrong; the message names the file and key."""


class DataError(CLIError):
    """The training or evaluation data cannot be used."""


class CheckpointError(CLIError):
    """A checkpoint is missing, corrupt, truncated or does not fit the model."""


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
