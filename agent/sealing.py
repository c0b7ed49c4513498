"""Recordings sealed at rest with a key the OS keyring keeps (issue 19, item 6).

A recording is the owner's movement, event by event: replayed through a fake input device it is
the owner to any behavioural biometric. Recordings that stay in mouseguard's recordings folder
(until an enrolment deletes them, or for good when the user keeps them) are therefore sealed:
Fernet (AES-128-CBC with an HMAC-SHA256, from ``cryptography``) under a key that lives in the
OS keyring (Secret Service on Linux, the Keychain on macOS, the Credential Manager on Windows,
through ``keyring``), so a copy of the folder alone — a backup, a stolen disk, another account
that can read the files — holds nothing usable. ``mouseguard forget`` deletes the key, which
makes every sealed copy unreadable, backups included.

What it does not do: someone in the owner's unlocked session can ask the keyring for the key,
as mouseguard does (docs/threat-model.md). Where no keyring answers (a machine without a
desktop keyring), recordings are written in the clear, and that is said once in the log.
"""

from __future__ import annotations

import contextlib
import logging

from agent.errors import MouseguardError, one_line

log = logging.getLogger(__name__)

#: The first bytes of a sealed file; what follows is one Fernet token.
MAGIC = b"mouseguard-sealed-1\n"
SERVICE = "mouseguard"
KEY_NAME = "recordings-key"

_warned = False
#: Whether the last call found a keyring. keyring picks its backend once per process and keeps
#: "none" for good, so an agent started before the desktop's keyring came up on the session bus
#: would never seal: after a miss the next call looks again.
_found = False


class SealingUnavailable(MouseguardError, RuntimeError):
    """No key can be had from the OS keyring; the message says why in one line."""


def recordings_key(create: bool = True) -> bytes:
    """The recordings key from the OS keyring, made and stored there on first use when
    ``create``; raise :class:`SealingUnavailable` where no keyring answers or holds none."""
    global _found
    try:
        import keyring
        from cryptography.fernet import Fernet

        if not _found:
            _look_again(keyring)
        stored = keyring.get_password(SERVICE, KEY_NAME)
        if stored is None and create:
            stored = Fernet.generate_key().decode("ascii")
            keyring.set_password(SERVICE, KEY_NAME, stored)
            log.info("made the recordings key and stored it in the OS keyring (%s)", _backend_name())
    except ImportError as exc:
        raise SealingUnavailable(f"the keyring or cryptography package is missing ({exc.name})") from None
    except Exception as exc:  # keyring.errors.*, DBus and Secret Service errors, a locked keyring
        _found = False
        why = ("none in this session: no Secret Service on the session bus, no Keychain, no Credential Manager"
               if type(exc).__name__ == "NoKeyringError" else one_line(exc))  # (keyring's own is a paragraph)
        raise SealingUnavailable(f"the OS keyring did not answer ({why})") from None
    _found = True
    if stored is None:
        raise SealingUnavailable("the OS keyring holds no mouseguard recordings key (erased by `forget`?)")
    return stored.encode("ascii")


def key_for_writing() -> bytes | None:
    """The key to seal a new recording with, or None (written in the clear, said once)."""
    global _warned
    try:
        return recordings_key(create=True)
    except SealingUnavailable as exc:
        if not _warned:
            _warned = True
            log.warning("recordings are written unencrypted: %s", exc)
        return None


def seal(payload: bytes, key: bytes) -> bytes:
    from cryptography.fernet import Fernet

    return MAGIC + Fernet(key).encrypt(payload)


def is_sealed(head: bytes) -> bool:
    return head.startswith(MAGIC)


def unseal(data: bytes, what: str) -> bytes:
    """The payload of a sealed file's bytes; :class:`SealingUnavailable` naming ``what`` when the
    key is not to be had or is not the one it was sealed with."""
    try:
        key = recordings_key(create=False)
    except SealingUnavailable as exc:
        raise SealingUnavailable(f"{what} is sealed with mouseguard's key from the OS keyring, "
                                 f"which cannot be read here: {exc}") from None
    from cryptography.fernet import Fernet, InvalidToken

    try:
        return Fernet(key).decrypt(data[len(MAGIC):])
    except InvalidToken:
        raise SealingUnavailable(f"{what} is sealed with another key than the one in this OS keyring "
                                 "(made in another account, or before `forget`), or it is damaged") from None


def forget_key() -> str:
    """Delete the recordings key from the OS keyring: every sealed recording, copies included,
    becomes unreadable. Returns what was done, for ``forget`` to say."""
    try:
        import keyring
        from keyring.errors import PasswordDeleteError

        try:
            keyring.delete_password(SERVICE, KEY_NAME)
        except PasswordDeleteError:
            return "no recordings key in the OS keyring"
    except Exception as exc:  # no keyring answers: then none holds a key of ours here either
        return f"no OS keyring answered, so no recordings key was deleted ({one_line(exc)})"
    return "deleted the recordings key from the OS keyring (sealed copies anywhere are unreadable now)"


def _look_again(keyring) -> None:
    """Have keyring choose its backend afresh (its list of usable ones is computed once)."""
    import keyring.backend

    reset = getattr(keyring.backend.get_all_keyring, "reset", None)  # jaraco.functools.once
    if reset is not None:
        with contextlib.suppress(KeyError):  # (nothing chosen yet)
            reset()
    keyring.core.init_backend()


def _backend_name() -> str:
    import keyring

    return type(keyring.get_keyring()).__module__.rsplit(".", 1)[-1]

