"""Typed deploy errors, each with the CLI exit code it maps to."""

from __future__ import annotations


class DeployError(Exception):
    """Base class: a message for the user and a process exit code."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class InvalidSpec(DeployError):
    """The deployment spec (or the command line) is wrong."""

    exit_code = 2


class TerraformMissing(DeployError):
    """No terraform executable was found."""

    exit_code = 3


class NotAuthenticated(DeployError):
    """Terraform could not find or use cloud credentials."""

    exit_code = 4


class TerraformFailed(DeployError):
    """Terraform exited non-zero for another reason; its exit code is passed through."""
