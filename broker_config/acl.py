"""Who may publish and subscribe to what: the broker's ACL, rendered from the store config.

Every device and service connects with its own username. A gateway may publish only its
own status and BLE topics and the footfall/presence of the zones it covers; a POS adapter
only its lanes' checkouts; a handheld reads only its own prompt topic and writes only its
own feedback and status; each service gets exactly the topics its job needs.

The rules are explicit ``user`` blocks generated from the store config rather than
``pattern`` lines with ``%u``: a pattern applies to every user, so ``handheld/%u/feedback``
would also let a gateway write feedback under its own id. Pure code: the caller writes the
text to the broker's ``acl_file`` and reloads the broker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from broker_config.contract import TOPIC_ROOT

if TYPE_CHECKING:  # the wire imports nothing of ours at run time but errors
    from floorwalker.config import StoreConfig


class DeviceKind(StrEnum):
    GATEWAY = "gateway"
    POS = "pos"
    HANDHELD = "handheld"
    SERVICE = "service"


#: Store-server processes that get broker accounts of their own.
ServiceName = Literal["recommender", "api", "fuser", "recorder", "replay"]
SERVICE_NAMES: tuple[ServiceName, ...] = ("recommender", "api", "fuser", "recorder", "replay")


@dataclass(frozen=True, slots=True)
class Account:
    """One broker login: its kind, the id it stands for and its username."""

    kind: DeviceKind
    id: str

    @property
    def username(self) -> str:
        # Services share no id space with devices: "svc-" keeps them apart.
        return f"svc-{self.id}" if self.kind is DeviceKind.SERVICE else self.id


@dataclass(frozen=True, slots=True)
class Grant:
    access: Literal["read", "write", "readwrite"]
    topic: str


class UnknownDevice(ValueError):
    """The account names a device the store config does not know."""


def grants(account: Account, store: StoreConfig, prefix: str = "") -> list[Grant]:
    """The topics ``account`` may use in ``store`` (raises :class:`UnknownDevice`)."""
    root = f"{prefix}{TOPIC_ROOT}/{store.store}"
    kind, ident = account.kind, account.id
    if kind is DeviceKind.GATEWAY:
        gw = next((g for g in store.gateways if g.id == ident), None)
        if gw is None:
            raise UnknownDevice(f"gateway {ident!r} is not in the store config of {store.store!r}")
        return [
            Grant("readwrite", f"{root}/gw/{ident}/#"),
            Grant("read", f"{root}/erasure/+/notice"),
            *(Grant("write", f"{root}/zone/{z}/{t}") for z in gw.zones for t in ("footfall", "presence")),
        ]
    if kind is DeviceKind.POS:
        lanes = [lane.id for lane in store.lanes if lane.pos == ident]
        if not lanes:
            raise UnknownDevice(
                f"POS adapter {ident!r} serves no lane in the store config of {store.store!r}"
            )
        return [
            *(Grant("write", f"{root}/pos/{lane}/checkout") for lane in lanes),
            # Its outbox: acknowledgements and erasure notices.
            Grant("read", f"{root}/gw/{ident}/ack"),
            Grant("read", f"{root}/erasure/+/notice"),
        ]
    if kind is DeviceKind.HANDHELD:
        if not any(a.id == ident for a in store.associates):
            raise UnknownDevice(f"associate {ident!r} is not in the store config of {store.store!r}")
        return [
            Grant("read", f"{root}/handheld/{ident}/prompt"),
            Grant("write", f"{root}/handheld/{ident}/feedback"),
            Grant("write", f"{root}/handheld/{ident}/status"),
        ]
    if ident not in SERVICE_NAMES:
        raise UnknownDevice(f"service {ident!r} is not one of {', '.join(SERVICE_NAMES)}")
    service_grants: dict[str, list[Grant]] = {
        "recommender": [
            Grant("read", f"{root}/#"),
            Grant("write", f"{root}/handheld/+/prompt"),
            Grant("write", f"{root}/deadletter"),
            Grant("write", f"{root}/gw/+/ack"),
            Grant("write", f"{root}/erasure/+/notice"),
        ],
        "api": [
            Grant("read", f"{root}/#"),
            Grant("write", f"{root}/handheld/+/feedback"),
            Grant("write", f"{root}/handheld/+/status"),
            # A manager's Reassign on the dashboard, for the recommender (it routes).
            Grant("write", f"{root}/manager/+/reassign"),
        ],
        "fuser": [
            Grant("read", f"{root}/gw/#"),
            Grant("read", f"{root}/erasure/+/notice"),
            Grant("write", f"{root}/zone/+/presence"),
            Grant("write", f"{root}/deadletter"),
            # Its retained FuserStatus (counts per gateway), under its producer id.
            Grant("write", f"{root}/fuser/{store.ble_presence.fuser}/status"),
        ],
        "recorder": [Grant("read", f"{root}/#")],
        # Replays a trace as the store's devices would: for a test or staging broker.
        "replay": [Grant("write", f"{root}/#")],
    }
    return service_grants[ident]


def render(accounts: Iterable[Account], store: StoreConfig, prefix: str = "") -> str:
    """The ``acl_file`` text for these accounts (anonymous clients get nothing)."""
    lines = [
        f"# Floorwalker ACL for store {store.store!r}; generated by `floorwalker provision`, do not edit.",
        "# Clients without an account below may neither publish nor subscribe.",
    ]
    for account in sorted(accounts, key=lambda a: (a.kind.value, a.id)):
        lines += ["", f"# {account.kind.value} {account.id}", f"user {account.username}"]
        lines += [f"topic {g.access} {g.topic}" for g in grants(account, store, prefix)]
    return "\n".join(lines) + "\n"
