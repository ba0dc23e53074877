#!/usr/bin/env python3
"""evq.py: event helpers for tests/integration/sut.sh.

  evq.py envelope DATA_JSON [CORRELATION_ID]   a fresh envelope (one line)
  evq.py key PREFIX DATA_JSON                  the contract's idempotency key
  evq.py count FILE BATCH [FIELD=VALUE...]     events of BATCH in FILE
  evq.py ready FILE BATCH SLOTS_JSON           checks the ready event(s)
  evq.py envelopes FILE TOPIC                  checks every envelope in FILE
  evq.py correlation FILE BATCH CORRELATION    every event of BATCH carries it

FILE holds kcat output lines "key<TAB>value". Checks print what is wrong
and exit 1; they print nothing and exit 0 when all holds.
"""
import datetime
import hashlib
import json
import sys
import uuid

IN_TOPIC = "essay.content.provisioned.v1"


def events(path, batch=None):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            key, _, value = line.partition("\t")
            env = json.loads(value)
            if batch is None or env.get("data", {}).get("batch_id") == batch:
                out.append((key, env))
    return out


def fail(msg):
    print(msg)
    sys.exit(1)


def main(argv):
    cmd = argv[1]
    if cmd == "envelope":
        data = json.loads(argv[2])
        env = {
            "event_id": str(uuid.uuid4()),
            "event_type": IN_TOPIC,
            "event_timestamp": datetime.datetime.now(datetime.timezone.utc)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "source_service": "file-service",
            "correlation_id": argv[3] if len(argv) > 3 else str(uuid.uuid4()),
            "data": data,
        }
        print(json.dumps(env, ensure_ascii=False))
    elif cmd == "key":
        data = json.loads(argv[3])
        h = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
        print(f"{argv[2]}:idempotency:v2:els:{IN_TOPIC}:{h}")
    elif cmd == "count":
        want = dict(a.split("=", 1) for a in argv[4:])
        n = sum(
            1
            for _, e in events(argv[2], argv[3])
            if all(str(e["data"].get(k)) == v for k, v in want.items())
        )
        print(n)
    elif cmd == "ready":
        evs = events(argv[2], argv[3])
        slots = json.loads(argv[4])
        if len(evs) != 1:
            fail(f"{len(evs)} ready events for {argv[3]}, want 1")
        key, env = evs[0]
        ids = env["data"].get("essay_ids")
        if key != argv[3]:
            fail(f"key {key!r}, want {argv[3]!r}")
        if ids != sorted(slots):
            fail(f"essay_ids {ids}, want {sorted(slots)}")
    elif cmd == "envelopes":
        evs = events(argv[2])
        if not evs:
            fail("no events")
        for key, env in evs:
            try:
                uuid.UUID(env["event_id"])
                uuid.UUID(env["correlation_id"])
                datetime.datetime.fromisoformat(
                    env["event_timestamp"].replace("Z", "+00:00")
                )
            except (KeyError, ValueError, TypeError) as e:
                fail(f"bad envelope {env}: {e!r}")
            if env.get("event_type") != argv[3]:
                fail(f"event_type {env.get('event_type')!r}, want {argv[3]!r}")
            if not isinstance(env.get("source_service"), str) or not env["source_service"]:
                fail(f"no source_service in {env}")
            if not isinstance(env.get("data"), dict):
                fail(f"no data object in {env}")
            if key != env["data"].get("batch_id"):
                fail(f"key {key!r} is not the batch id of {env}")
    elif cmd == "correlation":
        evs = events(argv[2], argv[3])
        if not evs:
            fail("no events")
        for _, env in evs:
            if env.get("correlation_id") != argv[4]:
                fail(f"correlation_id {env.get('correlation_id')!r}, want {argv[4]!r}")
    else:
        fail(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
