"""The credentials file: the access keys the ``sigv4`` mode accepts, in ``~/.aws/credentials``
format, each standing for an identity: an IAM user (by default), an IAM role or an account's
root user, with an optional identity-based IAM policy (docs/access-control.md, "Identities").

This module only reads and validates the file; it knows nothing of requests or signatures.
The keys it adds (``principal_arn``, ``iam_policy``, ``iam_policy_file``) are ones the AWS
CLI ignores, so the same file still works as an AWS CLI credentials file.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kms_service.access import Identity, PolicySyntaxError, make_identity, parse_policy
from kms_service.access.policy import Policy, check_identity_policy
from kms_service.domain.errors import ConfigurationError

_ACCOUNT_ID = re.compile(r"[0-9]{12}")
# Access key ids go into ``Credential=<id>/...``; a comma, slash or space would break it.
_ACCESS_KEY_ID = re.compile(r"[A-Za-z0-9_.@+-]{1,128}")
# The profile name becomes an IAM user name in the principal ARN, so it follows IAM's pattern.
_PROFILE_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{1,64}")
# configparser gives the section named here to every other section as defaults. AWS
# credentials files have no such section, and no ``[...]`` header can name the empty string.
_NO_DEFAULT_SECTION = ""


def is_account_id(value: str) -> bool:
    """True if ``value`` is an AWS account id: exactly 12 digits."""
    return _ACCOUNT_ID.fullmatch(value) is not None


@dataclass(frozen=True)
class Credential:
    """One profile of a credentials file. The secret and the token never appear in a repr."""

    profile: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    account_id: str
    session_token: str | None = field(default=None, repr=False)
    #: ``principal_arn`` from the file, if set (an IAM user, role or root ARN).
    configured_principal_arn: str | None = None
    #: The identity-based IAM policy (``iam_policy`` / ``iam_policy_file``), if any.
    iam_policy: Policy | None = field(default=None, repr=False, compare=False)

    @property
    def principal_arn(self) -> str:
        """Who this profile stands for: ``principal_arn`` if set, else the IAM user
        ``arn:aws:iam::<account>:user/<profile>``."""
        if self.configured_principal_arn is not None:
            return self.configured_principal_arn
        return f"arn:aws:iam::{self.account_id}:user/{self.profile}"

    def identity(self) -> Identity:
        """The identity authorisation sees for this profile."""
        return make_identity(self.principal_arn, self.iam_policy)


class CredentialStore:
    """The access keys the ``sigv4`` mode accepts, by access key id."""

    def __init__(self, credentials: Iterable[Credential]) -> None:
        """Index ``credentials``; raises ``ValueError`` if two share an access key id."""
        self._by_access_key_id: dict[str, Credential] = {}
        for credential in credentials:
            if credential.access_key_id in self._by_access_key_id:
                raise ValueError(f"duplicate access key id {credential.access_key_id!r}")
            self._by_access_key_id[credential.access_key_id] = credential

    def __len__(self) -> int:
        return len(self._by_access_key_id)

    @classmethod
    def load(cls, path: Path, default_account_id: str) -> CredentialStore:
        """Read an INI file in the ``~/.aws/credentials`` format.

        Each ``[profile]`` needs ``aws_access_key_id`` and ``aws_secret_access_key``, and may
        have ``aws_session_token``, ``aws_account_id`` (default: the account of
        ``principal_arn``, else ``default_account_id``), ``principal_arn`` and one of
        ``iam_policy`` (JSON on one line) and ``iam_policy_file`` (a path, relative to the
        credentials file's directory). Other keys (``region``...) are ignored, so a real
        credentials file can be used.

        Raises :class:`ConfigurationError` with one line naming the file and, where there is
        one, the profile: unreadable or malformed file, no profiles, a missing or malformed
        field, an access key id used twice, an account id that is not 12 digits, a
        principal ARN that is not an IAM user, role or root ARN of the profile's account, or
        an IAM policy that is not one. No message ever quotes a secret or a token.
        """
        if not is_account_id(default_account_id):
            raise ConfigurationError(
                f"default account id for credentials file {path} must be 12 digits, "
                f"got {default_account_id!r}"
            )
        parser = _read_ini(path)
        credentials: list[Credential] = []
        profile_by_access_key_id: dict[str, str] = {}
        for profile in parser.sections():
            credential = _credential_from_section(
                path, profile, parser[profile], default_account_id
            )
            earlier = profile_by_access_key_id.get(credential.access_key_id)
            if earlier is not None:
                raise ConfigurationError(
                    f"credentials file {path}, [{profile}]: aws_access_key_id "
                    f"{credential.access_key_id} is already used by [{earlier}]; "
                    "every access key id must be unique"
                )
            profile_by_access_key_id[credential.access_key_id] = profile
            credentials.append(credential)
        if not credentials:
            raise ConfigurationError(
                f"credentials file {path} defines no profiles: add a [name] section with "
                "aws_access_key_id and aws_secret_access_key"
            )
        return cls(credentials)

    def lookup(self, access_key_id: str) -> Credential | None:
        """The credential with this access key id, or None if there is none."""
        return self._by_access_key_id.get(access_key_id)


def _read_ini(path: Path) -> configparser.RawConfigParser:
    """Parse ``path`` as INI; every failure becomes a :class:`ConfigurationError`.

    Parser errors are reported by line number only: the offending line may hold a secret.
    """
    parser = configparser.RawConfigParser(default_section=_NO_DEFAULT_SECTION, strict=True)
    try:
        with path.open(encoding="utf-8") as stream:
            parser.read_file(stream, source=str(path))
    except OSError as error:
        raise ConfigurationError(
            f"cannot read credentials file {path}: {error.strerror or error}"
        ) from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"credentials file {path} is not UTF-8 text") from None
    except configparser.MissingSectionHeaderError as error:
        raise ConfigurationError(
            f"credentials file {path}, line {error.lineno}: "
            "expected a [profile] header before the first setting"
        ) from None
    except configparser.DuplicateSectionError as error:
        raise ConfigurationError(
            f"credentials file {path}, line {error.lineno}: profile [{error.section}] appears twice"
        ) from None
    except configparser.DuplicateOptionError as error:
        raise ConfigurationError(
            f"credentials file {path}, line {error.lineno}, [{error.section}]: "
            f"{error.option} is set twice"
        ) from None
    except configparser.ParsingError as error:
        lines = ", ".join(str(line_number) for line_number, _ in error.errors)
        raise ConfigurationError(
            f"credentials file {path}: line {lines} is not a [profile] header "
            "or a 'name = value' setting"
        ) from None
    return parser


def _credential_from_section(
    path: Path, profile: str, section: configparser.SectionProxy, default_account_id: str
) -> Credential:
    """Build one :class:`Credential`; raises :class:`ConfigurationError` naming the profile."""
    where = f"credentials file {path}, [{profile}]"
    if not _PROFILE_NAME.fullmatch(profile):
        raise ConfigurationError(
            f"{where}: the profile name becomes an IAM user name, so it may only use "
            "letters, digits and _+=,.@- (at most 64)"
        )
    missing = [
        name for name in ("aws_access_key_id", "aws_secret_access_key") if not section.get(name)
    ]
    if missing:
        raise ConfigurationError(f"{where}: missing {' and '.join(missing)}")
    access_key_id = section["aws_access_key_id"]
    if not _ACCESS_KEY_ID.fullmatch(access_key_id):
        raise ConfigurationError(
            f"{where}: aws_access_key_id may only use letters, digits and _.@+- "
            f"(at most 128), got {access_key_id!r}"
        )
    secret = section["aws_secret_access_key"]
    # An indented next line is an INI continuation and lands inside the value.
    if any(character.isspace() for character in secret):
        raise ConfigurationError(f"{where}: aws_secret_access_key contains whitespace")
    session_token = section.get("aws_session_token") or None
    if session_token is not None and any(character.isspace() for character in session_token):
        raise ConfigurationError(f"{where}: aws_session_token contains whitespace")
    principal_arn = section.get("principal_arn") or None
    principal_account: str | None = None
    if principal_arn is not None:
        try:
            principal_account = make_identity(principal_arn).account_id
        except ValueError as error:
            raise ConfigurationError(f"{where}: principal_arn {error}") from None
    account_id = section.get("aws_account_id") or principal_account or default_account_id
    if not is_account_id(account_id):
        raise ConfigurationError(f"{where}: aws_account_id must be 12 digits, got {account_id!r}")
    if principal_account is not None and principal_account != account_id:
        raise ConfigurationError(
            f"{where}: principal_arn is in account {principal_account} but aws_account_id "
            f"is {account_id}"
        )
    return Credential(
        profile=profile,
        access_key_id=access_key_id,
        secret_access_key=secret,
        account_id=account_id,
        session_token=session_token,
        configured_principal_arn=principal_arn,
        iam_policy=_iam_policy(path, where, section),
    )


def _iam_policy(path: Path, where: str, section: configparser.SectionProxy) -> Policy | None:
    """The profile's ``iam_policy`` or ``iam_policy_file``, parsed and checked."""
    text = section.get("iam_policy") or None
    policy_file = section.get("iam_policy_file") or None
    if text is not None and policy_file is not None:
        raise ConfigurationError(f"{where}: set iam_policy or iam_policy_file, not both")
    source = "iam_policy"
    if policy_file is not None:
        policy_path = path.parent / Path(policy_file).expanduser()
        source = f"iam_policy_file {policy_path}"
        try:
            text = policy_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigurationError(f"{where}: cannot read {source}: {error}") from None
    if text is None:
        return None
    try:
        policy = parse_policy(text)
        check_identity_policy(policy)
    except PolicySyntaxError as error:
        raise ConfigurationError(
            f"{where}: {source} is not an IAM policy: {error.message}"
        ) from None
    return policy
