"""Handlers for mixop's Windows modules: one file per module, ``sim/modules/<module>.py``.

A handler file defines one function per phase it answers (docs/windows-protocol.md §1):

    def probe(ctx) -> dict   # report the current state; change nothing
    def apply(ctx) -> dict   # carry out ctx.plan
    def run(ctx) -> dict     # single-step modules (facts, ping)

The returned dict is the RES ``result``. ``ctx`` (sim.host.Context) has ``args``, ``plan``,
``phase``, ``check_mode``, ``env``, ``script``, ``ps`` (the simulated cmdlets, sim/cmdlets.py),
``fs`` (the simulated disk), ``arg(name, default=None, required=False)`` and ``warn(text)``.
Raise ``sim.errors.CmdletError`` (usually by letting a ``ctx.ps`` call raise it) for a failure the
real script would report; anything else is reported as a simulator bug (``mixop.SimulatorError``).

The module name in a request may be a FQCN (``ansible.windows.win_feature``): the last dotted
component names the file.
"""

from __future__ import annotations

import importlib
import os
import re
import threading

PHASES = ("probe", "apply", "run")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_cache: dict[str, object] = {}
_lock = threading.Lock()


def canonical(module: str) -> str:
    return str(module or "").strip().rsplit(".", 1)[-1].lower()


def load(module: str):
    """The handler module for ``module`` or None when there is no sim/modules/<name>.py."""
    name = canonical(module)
    if not _NAME.match(name) or name.startswith("_"):
        return None
    with _lock:
        if name in _cache:
            return _cache[name]
        if not os.path.exists(os.path.join(os.path.dirname(__file__), name + ".py")):
            return None
        mod = importlib.import_module("%s.%s" % (__name__, name))  # import errors propagate: a handler bug
        _cache[name] = mod
        return mod


def handler(module: str, phase: str):
    mod = load(module)
    if mod is None:
        return None
    fn = getattr(mod, phase, None)
    return fn if callable(fn) else None


def available() -> list[str]:
    here = os.path.dirname(__file__)
    return sorted(f[:-3] for f in os.listdir(here) if f.endswith(".py") and not f.startswith("_"))
