"""Every parser of outside input, fuzzed: mutated real payloads, config files and credentials
end in the parser's own clear error (a dead-letter reason, a ConfigError naming the file),
never in anything else.
"""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from broker_config.contract import SPECS, ContractError, RejectReason, TopicKind, Topics, decode, encode
from floorwalker.config import load_store_config
from floorwalker.errors import ConfigError
from floorwalker.provision import load_credentials
from tests.conftest import DEMO_STORE
from tests.fuzz.conftest import FUZZ, FUZZ_SLOW
from tests.unit.test_contract import SAMPLES

TOPICS = Topics()
KINDS = sorted(SPECS, key=lambda k: k.value)
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)


def _topic(kind: TopicKind) -> str:
    subject, _ = SAMPLES[kind]
    return TOPICS.build(kind, "store-1", subject)


def _valid_bytes(kind: TopicKind) -> bytes:
    _, payload = SAMPLES[kind]
    return encode(payload)  # type: ignore[arg-type]


def _decode_or_reject(kind: TopicKind, payload: bytes) -> None:
    try:
        message = decode(TOPICS, _topic(kind), payload)
    except ContractError as err:
        assert err.reason in RejectReason and err.detail
    else:
        assert isinstance(message.payload, SPECS[kind].model)


@FUZZ
@given(kind=st.sampled_from(KINDS), data=st.data())
def test_mutated_payload_bytes(kind: TopicKind, data: st.DataObject) -> None:
    raw = bytearray(_valid_bytes(kind))
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[pos] ^= data.draw(st.integers(1, 255))
        elif op == "insert":
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and raw:
            del raw[pos]
        else:
            del raw[pos:]
    _decode_or_reject(kind, bytes(raw))


@FUZZ
@given(kind=st.sampled_from(KINDS), key=st.text(max_size=20), value=JSON_VALUES, drop=st.booleans())
def test_mutated_payload_fields(kind: TopicKind, key: str, value: object, drop: bool) -> None:
    body = json.loads(_valid_bytes(kind))
    fields = sorted(body)
    target = fields[hash(key) % len(fields)] if drop or not key else key
    if drop:
        body.pop(target)
    else:
        body[target] = value
    _decode_or_reject(kind, json.dumps(body).encode())


DEMO_CONFIG = yaml.safe_load(DEMO_STORE.read_text())
DEMO_CONFIG["crm"] = str(DEMO_STORE.parent / DEMO_CONFIG["crm"])


@FUZZ_SLOW
@given(key=st.sampled_from(["zones", "gateways", "lanes", "associates", "floor", "entrances", "rules"]),
       index=st.integers(0, 5), field=st.text(min_size=1, max_size=12), value=JSON_VALUES)  # fmt: skip
def test_mutated_store_config(
    tmp_path_factory: pytest.TempPathFactory, key: str, index: int, field: str, value: object
) -> None:
    config = copy.deepcopy(DEMO_CONFIG)
    section = config.get(key)
    if isinstance(section, list) and section:
        item = section[index % len(section)]
        item[field if index % 2 else sorted(item)[index % len(item)]] = value
    elif isinstance(section, dict):
        section[field if index % 2 else sorted(section)[index % len(section)]] = value
    path = tmp_path_factory.getbasetemp() / "fuzz-store.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    try:
        load_store_config(path)
    except ConfigError as err:
        assert str(err).startswith(f"{path}:")


@FUZZ
@given(content=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_config_and_credential_files(
    tmp_path_factory: pytest.TempPathFactory, content: bytes
) -> None:
    base = tmp_path_factory.mktemp("raw")
    for loader, name in ((load_store_config, "store.yaml"), (load_credentials, "device.json")):
        path = base / name
        path.write_bytes(content)
        try:
            loader(path)
        except ConfigError as err:
            assert str(err).startswith(f"{path}")
