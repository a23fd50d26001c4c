"""The cluster's directory: which instance owns which user, as this instance knows it.

A user's actor runs on exactly one instance at a time, its *owner*. The directory is the
read side the rest of the service uses (the HTTP layer to route a command, the actors to
fence themselves); :class:`tradercoin.cluster.ownership.Ownership` implements it.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Directory", "InstanceInfo", "NotOwner", "SingleInstance", "StaticDirectory"]


class NotOwner(Exception):
    """This instance may not act for the user now (it lost, or never had, the ownership)."""


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """One instance as the cluster sees it.

    Attributes:
        id: the instance id (``tradercoin serve`` prints it).
        address: the base URL other instances reach it on (``http://127.0.0.1:8081``).
        healthy: it holds its database connection and renewed its presence lately.
        users: how many users it owns.
        heartbeat_age: seconds since it last renewed its presence.
    """

    id: str
    address: str
    healthy: bool
    users: int
    heartbeat_age: float


class Directory(Protocol):
    """Who owns which user, as this instance knows it (refreshed about every second)."""

    instance_id: str

    def owns(self, user_id: int) -> bool:
        """Whether this instance owns ``user_id`` now, its ownership still certain."""
        ...

    def owner_of(self, user_id: int) -> InstanceInfo | None:
        """The instance owning ``user_id`` (maybe this one), or None when none does now."""
        ...

    def fence(self, user_id: int) -> None:
        """Raise :class:`NotOwner` unless this instance may act for ``user_id`` right now:
        actors call it before every exchange request and every store write."""
        ...

    def instances(self) -> list[InstanceInfo]: ...


class SingleInstance:
    """The directory of a service that runs alone (SQLite, or ``cluster = off``): it owns
    every user."""

    def __init__(self, instance_id: str = "single", address: str = "") -> None:
        self.instance_id = instance_id
        self.address = address

    def owns(self, user_id: int) -> bool:
        return True

    def owner_of(self, user_id: int) -> InstanceInfo | None:
        return InstanceInfo(self.instance_id, self.address, True, 0, 0.0)

    def fence(self, user_id: int) -> None:
        return None

    def instances(self) -> list[InstanceInfo]:
        return [InstanceInfo(self.instance_id, self.address, True, 0, 0.0)]


class StaticDirectory:
    """A fixed assignment of users to instances, for tests and benchmarks only: nothing is
    claimed, renewed or taken over. ``owners`` (user -> instance) is read at every call, so
    a test moves a user by changing it; several instances may share one mapping."""

    def __init__(self, instance_id: str, owners: MutableMapping[int, InstanceInfo]) -> None:
        self.instance_id = instance_id
        self.owners = owners

    def owns(self, user_id: int) -> bool:
        owner = self.owners.get(user_id)
        return owner is not None and owner.id == self.instance_id

    def owner_of(self, user_id: int) -> InstanceInfo | None:
        return self.owners.get(user_id)

    def fence(self, user_id: int) -> None:
        if not self.owns(user_id):
            raise NotOwner(f"instance {self.instance_id} does not own user {user_id}")

    def instances(self) -> list[InstanceInfo]:
        return sorted({o.id: o for o in self.owners.values()}.values(), key=lambda o: o.id)
