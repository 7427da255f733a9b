"""pylsl, imported only when an LSL part is used, with an error that says how to get it.

pylsl is an optional extra (``pip install 'signstream[lsl]'``). Its x86_64 Linux wheels bundle
liblsl; on aarch64 (a Raspberry Pi) the wheel is pure Python and needs liblsl installed separately
(docs/LSL.md says how). Both cases end in one ``LslUnavailable`` that names the fix.
"""

from __future__ import annotations

INSTALL_HINT = ("pip install 'signstream[lsl]' (pylsl); on a Raspberry Pi also install liblsl "
                "(docs/LSL.md, 'liblsl on a Raspberry Pi')")


class LslUnavailable(RuntimeError):
    """pylsl or its liblsl cannot be loaded; the message names what is missing and the fix."""


def load_pylsl():
    """The pylsl module, or LslUnavailable naming the install command."""
    try:
        import pylsl
    except ModuleNotFoundError:
        raise LslUnavailable(f"Lab Streaming Layer support needs pylsl, which is not installed: {INSTALL_HINT}") from None
    except (OSError, RuntimeError) as error:  # pylsl is there, its liblsl is not (aarch64 wheels)
        raise LslUnavailable(f"pylsl cannot load liblsl ({error}): {INSTALL_HINT}") from None
    return pylsl


def unavailable_reason() -> str | None:
    """Why LSL cannot be used here (None: it can): for tests that skip, and ``--check`` outputs."""
    try:
        load_pylsl()
    except LslUnavailable as error:
        return str(error)
    return None
