"""Where retention policies are found: one search path for every command.

The archive run, the purge (for the policy each manifest names) and ``archiver policies``
all look a policy name up through one :class:`PolicyRegistry`, built from the configuration
(:meth:`archiver.config.ArchiverConfig.policy_registry`): the user's folders first
(``ARCHIVER_POLICY_DIR``), in order, then the policies shipped with the tool. A user policy
therefore shadows a shipped one of the same name, everywhere alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from archiver.data import SHIPPED_POLICY_DIR
from archiver.errors import ConfigError
from archiver.retention.policies import RetentionPolicy
from archiver.retention.policy_files import load_policy_file

__all__ = ["PolicyRegistry"]


def _looks_like_path(name_or_path: str) -> bool:
    return name_or_path.endswith(".toml") or "/" in name_or_path or "\\" in name_or_path


@dataclass(frozen=True)
class PolicyRegistry:
    """Policies by name: ``{name}.toml`` in the first of :attr:`dirs` that has it.

    ``user_dirs`` come first, then the shipped folder (``archiver/data/retention_policies``);
    ``PolicyRegistry()`` knows the shipped policies only.
    """

    user_dirs: tuple[Path, ...] = ()

    @classmethod
    def with_user_dirs(cls, user_dirs: Iterable[str | Path]) -> PolicyRegistry:
        """A registry searching ``user_dirs`` (in order) before the shipped policies."""
        return cls(tuple(Path(d) for d in user_dirs))

    @property
    def dirs(self) -> tuple[Path, ...]:
        """Every folder searched, in order: the user's, then the shipped one."""
        return (*self.user_dirs, SHIPPED_POLICY_DIR)

    def names(self) -> list[str]:
        """Every policy name found in :attr:`dirs`, sorted."""
        return sorted({p.stem for d in self.dirs if d.is_dir() for p in d.glob("*.toml")})

    def load(self, name_or_path: str | Path) -> RetentionPolicy:
        """Load a policy by name, or from a path to a ``.toml`` file (a :class:`Path`, or a
        text ending in ``.toml`` or holding a path separator).

        Raises :class:`ConfigError` for an unknown name or missing file and
        :class:`PolicyError` (file, field, expected) for an invalid one.
        """
        text = str(name_or_path)
        if isinstance(name_or_path, Path) or _looks_like_path(text):
            return load_policy_file(text)
        for directory in self.dirs:
            candidate = directory / f"{text}.toml"
            if candidate.is_file():
                return load_policy_file(candidate)
        known = self.names()
        raise ConfigError(
            f"unknown retention policy {text!r}",
            expected="one of " + ", ".join(known) if known else "a policy file",
            searched=", ".join(str(d) for d in self.dirs),
        )

    def policies(self) -> list[RetentionPolicy]:
        """Every policy in :attr:`dirs`, sorted by name; an earlier folder shadows a later one
        with the same name. Raises :class:`PolicyError` on the first invalid file."""
        found: dict[str, RetentionPolicy] = {}
        for directory in self.dirs:
            if not directory.is_dir():
                continue
            for path in sorted(directory.glob("*.toml")):
                if path.stem not in found:
                    found[path.stem] = load_policy_file(path)
        return [found[name] for name in sorted(found)]
