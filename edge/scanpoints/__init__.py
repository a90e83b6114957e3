"""The station's other scan points: the checkers' pre- and post-fill checks, tag binding, dispatch.

One code path for every caller: the staff's web app and the demo's scripted checker both call
these functions, which validate, decide (the pure parts are in interlock.checks), and write each
result with its journal entry, naming who did it, in one transaction.
"""

from .common import Actor, Refused

__all__ = ["Actor", "Refused"]
