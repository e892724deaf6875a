"""The error hierarchy: one root, a subclass per stage; the CLI picks exit codes.

Standard library only: the air-gapped half imports this module too.
"""

from __future__ import annotations


class WheelferryError(Exception):
    """Root of every error wheelferry reports to a user (exit code 1)."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or {}  # structured data for --json (e.g. each policy violation)

    def __str__(self) -> str:
        return self.message


class UsageError(WheelferryError):
    """Bad usage or a bad input file (exit code 2)."""

    exit_code = 2


class TargetError(UsageError):
    """A target string or target capture that cannot be understood."""


class SpecError(UsageError):
    """A spec (manifest TOML), requirement or requirements file that is malformed."""


class LockFileError(UsageError):
    """A lock directory or lock file that is missing, malformed or edited by hand."""


class PolicyFileError(UsageError):
    """A policy TOML file that is malformed."""


class IndexUnreachableError(WheelferryError):
    """A package index or find-links location that could not be read."""


class InsecureOriginError(IndexUnreachableError):
    """A plain-HTTP index or find-links location on a host neither loopback nor trusted (pip's rule)."""


class MetadataError(WheelferryError):
    """Core metadata that could not be fetched, did not hash, or does not parse."""


class ResolutionError(WheelferryError):
    """The requirement set has no solution for a target."""


class NoWheelError(ResolutionError):
    """A package has no binary wheel usable on a target."""


class NoSuchProjectError(ResolutionError):
    """No index or find-links location offers any file of a requested project."""


class NoSuchVersionError(ResolutionError):
    """A project exists, but no release of it matches what was asked for."""


class ConflictError(ResolutionError):
    """Named requirements on one project that no single release satisfies together."""


class RuleError(ResolutionError):
    """A shipped package rule refuses a requirement for a target (e.g. TF GPU on Windows)."""


class FetchError(WheelferryError):
    """A wheel could not be downloaded intact from any location."""


class IndexHashError(FetchError):
    """A file an index serves contradicts a hash the same index advertises for it."""


class BundleError(WheelferryError):
    """A bundle could not be written."""


class SigningError(WheelferryError):
    """The signing key is unusable or gpg failed to sign."""


class VerificationError(WheelferryError):
    """A bundle failed verification: signature, hashes, members, freshness."""


class InstallError(WheelferryError):
    """The verified bundle could not be installed; the environment was left as it was."""


class PolicyViolation(WheelferryError):
    """A bundle or lock breaks the compliance policy."""
