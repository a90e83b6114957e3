"""What is wrong with a config, by file, line and key: the loader's errors, importable without
loading the models (a command that only glances at the file catches them too)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    path: str
    got: str
    expected: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path}: got {self.got}, expected {self.expected}"


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems
