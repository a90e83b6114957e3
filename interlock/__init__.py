"""The pure core of the interlock: code parsing, eligibility rules and the fill state machine.

Nothing in this package performs I/O or reads the clock: time and data are parameters, so every
decision it makes can be replayed and tested exhaustively.
"""
