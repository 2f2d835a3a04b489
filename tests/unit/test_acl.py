"""The broker ACL rendered from the store config: each account gets exactly its topics."""

from __future__ import annotations

import pytest

from broker_config.acl import Account, DeviceKind, UnknownDevice, grants, render
from floorwalker.config import StoreConfig

ROOT = "fw/v1/demo-store"


@pytest.mark.parametrize(
    ("account", "expected"),
    [
        (
            Account(DeviceKind.GATEWAY, "gw-fresh"),
            {
                ("readwrite", f"{ROOT}/gw/gw-fresh/#"),
                ("read", f"{ROOT}/erasure/+/notice"),
                ("write", f"{ROOT}/zone/produce/footfall"),
                ("write", f"{ROOT}/zone/produce/presence"),
                ("write", f"{ROOT}/zone/pantry/footfall"),
                ("write", f"{ROOT}/zone/pantry/presence"),
            },
        ),
        (
            Account(DeviceKind.POS, "pos-2"),
            {
                ("write", f"{ROOT}/pos/lane-2/checkout"),
                ("read", f"{ROOT}/gw/pos-2/ack"),
                ("read", f"{ROOT}/erasure/+/notice"),
            },
        ),
        (
            Account(DeviceKind.HANDHELD, "a-ben"),
            {
                ("read", f"{ROOT}/handheld/a-ben/prompt"),
                ("write", f"{ROOT}/handheld/a-ben/feedback"),
                ("write", f"{ROOT}/handheld/a-ben/status"),
            },
        ),
        (Account(DeviceKind.SERVICE, "recorder"), {("read", f"{ROOT}/#")}),
        (
            Account(DeviceKind.SERVICE, "api"),
            {
                ("read", f"{ROOT}/#"),
                ("write", f"{ROOT}/handheld/+/feedback"),
                ("write", f"{ROOT}/handheld/+/status"),
                ("write", f"{ROOT}/manager/+/reassign"),
            },
        ),
    ],
)
def test_grants_per_kind(store_config: StoreConfig, account: Account, expected: set[tuple[str, str]]) -> None:
    assert {(g.access, g.topic) for g in grants(account, store_config)} == expected


@pytest.mark.parametrize(
    ("account", "message"),
    [
        (Account(DeviceKind.GATEWAY, "gw-roof"), "gateway 'gw-roof'"),
        (Account(DeviceKind.POS, "pos-9"), "POS adapter 'pos-9'"),
        (Account(DeviceKind.HANDHELD, "a-zed"), "associate 'a-zed'"),
        (Account(DeviceKind.SERVICE, "miner"), "service 'miner'"),
    ],
)
def test_unknown_devices_get_no_account(store_config: StoreConfig, account: Account, message: str) -> None:
    with pytest.raises(UnknownDevice, match=message):
        grants(account, store_config)


def test_render_writes_one_user_block_per_account_under_the_prefix(store_config: StoreConfig) -> None:
    text = render(
        [Account(DeviceKind.SERVICE, "api"), Account(DeviceKind.GATEWAY, "gw-chill")], store_config, "t1/"
    )
    blocks = [b for b in text.split("\n\n") if b.lstrip().startswith("#") and "user " in b]
    users = [line.split()[1] for b in blocks for line in b.splitlines() if line.startswith("user ")]
    assert users == ["gw-chill", "svc-api"]  # sorted by kind, then id; services prefixed
    topics = [line.split()[2] for line in text.splitlines() if line.startswith("topic ")]
    assert topics and all(t.startswith("t1/fw/v1/demo-store/") for t in topics)
    # No pattern lines: a %u pattern would apply to every account.
    assert "pattern" not in text
