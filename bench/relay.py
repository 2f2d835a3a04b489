"""The relay ``bench e2e`` measures as its second floor: a process that does nothing but
what any recommender of this shape must do for one event -- receive it (paho, QoS 1),
make one Redis ``EVALSHA`` round trip (of ``return 1``) and publish a message (QoS 1).

Its event -> message latency is the least the real path could cost in Python with these
clients; the recommender's latency above it is what deciding costs. Started by
:func:`bench.e2e.measure_relay` as ``python -m bench.relay``; it echoes
each payload from one topic to the other and prints ``ready`` once subscribed.
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import sys
import threading

import redis

from floorwalker.mqtt import MqttLink, Received

#: The floor's own trivial script (bench.e2e.TRIVIAL_SCRIPT, not imported: the
#: relay stays a small process).
TRIVIAL_SCRIPT = "return 1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__)
    parser.add_argument("--mqtt-host", required=True)
    parser.add_argument("--mqtt-port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--topic-in", required=True)
    parser.add_argument("--topic-out", required=True)
    a = parser.parse_args(argv)

    client = redis.Redis.from_url(a.redis_url)
    client.script_load(TRIVIAL_SCRIPT)
    sha = hashlib.sha1(TRIVIAL_SCRIPT.encode()).hexdigest()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def relay(msg: Received) -> bool:
        client.evalsha(sha, 0)
        link.publish(a.topic_out, msg.payload, qos=1)
        return True

    link = MqttLink(a.mqtt_host, a.mqtt_port, a.client_id, subscriptions=[(a.topic_in, 1)], on_message=relay)
    link.connect()
    print("ready", flush=True)
    try:
        stop.wait()
    finally:
        link.close()
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
