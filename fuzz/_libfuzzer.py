"""What the structure-aware harnesses share: libFuzzer's options."""

from __future__ import annotations

__all__ = ["with_defaults"]


def with_defaults(argv: list[str]) -> list[str]:
    """libFuzzer's options, with inputs long enough for several mutations from the start
    (by default it grows them slowly, and a short run never gets past a few bytes)."""
    given = {arg.split("=", 1)[0] for arg in argv[1:]}
    return argv + [opt for opt in ("-len_control=0", "-max_len=512")
                   if opt.split("=", 1)[0] not in given]
