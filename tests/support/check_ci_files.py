#!/usr/bin/env python3
"""check_ci_files.py ROOT: offline consistency checks of the Compose stack
and the CI templates (tests/integration/ci_files.sh runs it).

Prints one line per check, "ok<TAB>description" or "not ok<TAB>description"
followed by "#"-prefixed detail lines. Exit 0 when every check passed.

What it proves, without a Docker engine:
- every YAML file parses (PyYAML, merge keys resolved as Compose does);
- docker-compose.test.yml and ci/compose.env.json name the same ports,
  topics, consumer group and instances (published host ports = the ports in
  the environment's URLs; container ports = the ports the containers listen
  on; the Kafka listeners advertise what eventrig and the services dial),
  with the default ports and with the ports of one run (Compose's
  ${VAR:-default} and eventrig's ${env.VAR:-default} both interpolated);
- nothing is fixed per Docker host: no project name, no container or image
  name, every host port is ${EVENTRIG_*_PORT:-N}; ci/compose-env.sh prints
  a project name from the pipeline's job id and a free port for each;
- ci/compose.env.json starts nothing and declares what ci/local.env.json
  declares (same vars, same topics, same "state"), so the same scenarios run
  on both, with the stale-state audit and failure verdicts;
- every service has a health check and dependencies wait for health;
- sut/Dockerfile builds with the packages sut/ needs and its runtime stage
  holds the package of every library the service links, and curl;
- the CI templates install, build, run the suite and publish the JUnit file
  the run writes; the Compose job filters out exactly the scenario families
  that need fault proxies or service steps;
- shards: the GitHub matrix lists 1..N once each for --shard ${{ matrix.K }}/N
  (fail-fast off), the GitLab job runs `parallel: N` with eventrig taking
  CI_NODE_INDEX/CI_NODE_TOTAL for --shard; each shard keeps its report under
  a name of its own (artifact name, reports/junit-$CI_NODE_INDEX.xml) and
  publishes none; a merge job needs every shard, runs also after a failed
  one, builds eventrig, finds every shard's report where the download puts
  it, merges them all with `eventrig merge-reports` (and fails when one is
  missing: its count is N), uploads and publishes the merged file (GitHub,
  fork-safe) or hands it to GitLab as artifacts:reports:junit;
- GitHub: the publishing steps' `if:` (evaluated for a push, a branch pull
  request and a fork's pull request, after a pass and after a failure)
  publishes exactly where the token may write checks; only publishing jobs
  ask for checks: write; ci/github-actions-report.yml publishes, from a
  workflow_run, each publishing job's artifact of a fork's run (the merged
  shards', no shard's) on its head commit and runs no code; every action is
  a vetted one at its current major;
- each container job caches the .deb files of its ci/deps.sh call, keyed
  on ci/deps.sh (GitLab: one key per package group); each job installs the
  one package group its commands use (demo for the local stack, build to
  merge reports and against the Compose stack); the groups nest; the
  Makefile's demo and test install demo and test;
- the Compose jobs name the project after the pipeline's run or job id,
  export ci/compose-env.sh's ports before `up` and `down -v --rmi local`
  whatever happened.
"""
import json
import os
import re
import shlex
import subprocess
import sys
from urllib.parse import urlsplit

import yaml

ROOT = sys.argv[1] if len(sys.argv) > 1 else "."
FAILED = 0
CAPTURE = None  # a list: report() collects failures there instead of printing


def report(ok, desc, detail=()):
    global FAILED
    if CAPTURE is not None:
        if not ok:
            CAPTURE.append(f"{desc}: {'; '.join(map(str, detail))}")
        return
    print(("ok" if ok else "not ok") + "\t" + desc)
    if not ok:
        FAILED += 1
        for d in detail:
            print("# " + str(d))


def expect(desc, problems):
    """problems: list of strings; the check passes when it is empty."""
    report(not problems, desc, problems)


def load_yaml(rel):
    path = os.path.join(ROOT, rel)
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        report(False, f"{rel} parses as YAML", [e])
        return None
    if not isinstance(doc, dict):
        report(False, f"{rel} parses as YAML", ["top level is not a mapping"])
        return None
    report(True, f"{rel} parses as YAML")
    return doc


def load_json(rel):
    try:
        with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        report(False, f"{rel} parses as JSON", [e])
        return None


# Compose interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, $VAR, $$
COMPOSE_VAR = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def compose_interp(value, environ):
    """value (a loaded YAML document) with every string interpolated as
    Compose does with the variables environ."""
    if isinstance(value, dict):
        return {k: compose_interp(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [compose_interp(v, environ) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m):
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, default = m.group(2), m.group(3) or ""
        got = environ.get(name)
        if op == ":-" and not got:
            return default
        if op == "-" and got is None:
            return default
        return got or ""
    return COMPOSE_VAR.sub(sub, value)


ENV_REF = re.compile(r"\$\{env\.([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def env_resolve(doc, environ):
    """an environment file with its ${env.NAME} and ${env.NAME:-default}
    resolved as eventrig does: earlier vars first, then the process
    environment environ, then the default. Other ${...} are left as they
    are; state.idempotency_key is expanded per event, so it is left too."""
    out = json.loads(json.dumps(doc))
    seen = {}

    def expand(v):
        if isinstance(v, dict):
            return {k: expand(x) for k, x in v.items()}
        if isinstance(v, list):
            return [expand(x) for x in v]
        if not isinstance(v, str):
            return v

        def sub(m):
            name, default = m.group(1), m.group(2)
            if name in seen:
                return seen[name]
            if environ.get(name):
                return environ[name]
            return default if default is not None else m.group(0)
        return ENV_REF.sub(sub, v)
    for k, v in (out.get("vars") or {}).items():
        seen[k] = out["vars"][k] = expand(v)
    for k in list(out):
        if k == "vars":
            continue
        if k == "state" and isinstance(out[k], dict):
            out[k] = {sk: (sv if sk == "idempotency_key" else expand(sv)) for sk, sv in out[k].items()}
        else:
            out[k] = expand(out[k])
    return out


def host_port(url_or_addr):
    """(host, port) of a URL or host:port."""
    if "://" in url_or_addr:
        u = urlsplit(url_or_addr)
        return u.hostname, u.port
    h, _, p = url_or_addr.rpartition(":")
    return h, int(p)


def published(svc):
    """[(host_ip, host_port, container_port)] of a service's short-syntax ports."""
    out = []
    for p in svc.get("ports", []):
        parts = str(p).split(":")
        if len(parts) == 3:
            out.append((parts[0], int(parts[1]), int(parts[2])))
        elif len(parts) == 2:
            out.append(("", int(parts[0]), int(parts[1])))
        else:
            out.append(("", None, int(parts[0])))
    return out


def host_port_for(svc, container_port):
    for ip, hp, cp in published(svc):
        if cp == container_port:
            return hp
    return None


def listeners(value):
    """'NAME://host:port,...' -> {NAME: (host, port)}"""
    out = {}
    for item in (value or "").split(","):
        name, _, addr = item.strip().partition("://")
        if name:
            h, _, p = addr.rpartition(":")
            out[name] = (h, int(p))
    return out


def check_compose(c, env, local):
    services = c.get("services") or {}
    v = env.get("vars", {})
    # --- nothing to start, same declarations as the local stack
    expect("ci/compose.env.json starts nothing (no services, proxies or ports)",
           [f"has '{k}'" for k in ("services", "proxies", "ports") if k in env])
    lv, cv = set(local.get("vars", {})), set(v)
    expect("ci/compose.env.json declares the vars ci/local.env.json declares",
           [f"missing: {sorted(lv - cv)}"] * bool(lv - cv) + [f"extra: {sorted(cv - lv)}"] * bool(cv - lv))
    for k in ("SUT_GROUP", "IDEM"):
        expect(f"var {k} is the same in both environments",
               [] if v.get(k) == local.get("vars", {}).get(k) else [f"{v.get(k)!r} != {local['vars'].get(k)!r}"])
    etopics = {t["name"] if isinstance(t, dict) else t: (t.get("partitions") if isinstance(t, dict) else None)
               for t in env.get("kafka", {}).get("topics", [])}
    ltopics = {t["name"]: t.get("partitions") for t in local.get("kafka", {}).get("embedded", {}).get("topics", [])}
    expect("ci/compose.env.json declares the local stack's topics and partitions",
           [] if etopics == ltopics else [f"compose env {etopics} != local {ltopics}"])

    # --- every published port on loopback only, no host port twice
    probs, seen = [], {}
    for name, s in services.items():
        for ip, hp, cp in published(s):
            if ip != "127.0.0.1":
                probs.append(f"{name}: {hp}:{cp} is not bound to 127.0.0.1")
            if hp in seen:
                probs.append(f"host port {hp} published by {seen[hp]} and {name}")
            seen[hp] = name
    expect("published ports are on 127.0.0.1 and distinct", probs)

    # --- health checks and dependencies
    probs = []
    for name, s in services.items():
        hc = s.get("healthcheck")
        if name == "kafka-topics":
            if hc:
                probs.append("kafka-topics is a one-shot job and should have no health check")
            continue
        if not hc or not hc.get("test") or hc.get("disable"):
            probs.append(f"{name}: no health check")
        for dep, cond in (s.get("depends_on") or {}).items():
            cond = (cond or {}).get("condition") if isinstance(cond, dict) else None
            if dep not in services:
                probs.append(f"{name}: depends on unknown service {dep}")
            elif cond == "service_healthy" and not services[dep].get("healthcheck"):
                probs.append(f"{name}: waits for {dep} to be healthy, but {dep} has no health check")
            elif cond not in ("service_healthy", "service_completed_successfully"):
                probs.append(f"{name}: depends on {dep} with condition {cond!r}")
    expect("every long-running service has a health check; dependencies wait for health", probs)
    hc_words = {"kafka": "kafka-broker-api-versions", "redis": "redis-cli ping", "postgres": "pg_isready",
                "sut-1": "/healthz"}
    probs = []
    for name, word in hc_words.items():
        t = (services.get(name, {}).get("healthcheck") or {}).get("test", [])
        t = " ".join(t) if isinstance(t, list) else str(t)
        if word not in t:
            probs.append(f"{name}: health check {t!r} does not use {word}")
    expect("health checks: broker API versions, redis-cli ping, pg_isready, GET /healthz", probs)

    # --- Kafka: listeners, published port, bootstrap addresses
    k = services.get("kafka", {})
    ke = k.get("environment", {})
    lis, adv = listeners(ke.get("KAFKA_LISTENERS")), listeners(ke.get("KAFKA_ADVERTISED_LISTENERS"))
    bootstrap = env.get("kafka", {}).get("bootstrap", "")
    probs = []
    bh, bp = host_port(bootstrap) if bootstrap else (None, None)
    host_lis = [n for n, (h, p) in adv.items() if (h, p) == (bh, bp)]
    if not host_lis:
        probs.append(f"no advertised listener is {bootstrap} (advertised: {ke.get('KAFKA_ADVERTISED_LISTENERS')})")
    else:
        # the listener eventrig dials listens on a container port that is
        # published as the host port the broker advertises
        n = host_lis[0]
        lp = lis.get(n, (None, None))[1]
        if lp is None:
            probs.append(f"advertised listener {n} is not a listener")
        elif host_port_for(k, lp) != bp:
            probs.append(f"listener {n} listens on container port {lp}, published as host port "
                         f"{host_port_for(k, lp)}, but the broker advertises {bh}:{bp} ({k.get('ports')})")
    expect("kafka.bootstrap of ci/compose.env.json is advertised, listened on and published by the broker", probs)
    probs = []
    if ke.get("KAFKA_PROCESS_ROLES", "").replace(" ", "") not in ("broker,controller", "controller,broker"):
        probs.append(f"KAFKA_PROCESS_ROLES={ke.get('KAFKA_PROCESS_ROLES')}")
    for key in ("KAFKA_NODE_ID", "CLUSTER_ID", "KAFKA_LOG_DIRS", "KAFKA_CONTROLLER_LISTENER_NAMES",
                "KAFKA_INTER_BROKER_LISTENER_NAME", "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"):
        if not ke.get(key):
            probs.append(f"{key} is not set")
    cid = str(ke.get("CLUSTER_ID", ""))
    if cid and not re.fullmatch(r"[A-Za-z0-9_-]{22}", cid):
        probs.append(f"CLUSTER_ID {cid!r} is not a 22-character base64 UUID")
    ctl = ke.get("KAFKA_CONTROLLER_LISTENER_NAMES", "")
    voters = str(ke.get("KAFKA_CONTROLLER_QUORUM_VOTERS", ""))
    if voters != f"{ke.get('KAFKA_NODE_ID')}@kafka:{lis.get(ctl, (None, None))[1]}":
        probs.append(f"KAFKA_CONTROLLER_QUORUM_VOTERS={voters} is not NODE_ID@kafka:<{ctl} port>")
    if ctl in adv:
        probs.append(f"the controller listener {ctl} is advertised to clients")
    pmap = dict(x.split(":", 1) for x in str(ke.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "")).split(",") if ":" in x)
    for n in lis:
        if n not in pmap:
            probs.append(f"listener {n} has no security protocol")
    for n in adv:
        if n not in lis:
            probs.append(f"advertised listener {n} is not a listener")
    if ke.get("KAFKA_INTER_BROKER_LISTENER_NAME") not in adv:
        probs.append("the inter-broker listener is not advertised")
    expect("Kafka runs in KRaft combined mode: node id, cluster id, controller quorum, listeners", probs)

    # --- Redis and Postgres
    probs = []
    rh, rp = host_port(env.get("redis", {}).get("url", ""))
    if host_port_for(services.get("redis", {}), 6379) != rp:
        probs.append(f"redis.url port {rp} is not the host port of redis:6379 ({services.get('redis', {}).get('ports')})")
    if "--port" in (services.get("redis", {}).get("command") or []):
        probs.append("redis: --port moves it off 6379")
    pg_dsn = urlsplit(env.get("postgres", {}).get("dsn", ""))
    pgs = services.get("postgres", {})
    if host_port_for(pgs, 5432) != pg_dsn.port:
        probs.append(f"postgres.dsn port {pg_dsn.port} is not the host port of postgres:5432 ({pgs.get('ports')})")
    pge = pgs.get("environment", {})
    if pg_dsn.path.lstrip("/") != pge.get("POSTGRES_DB"):
        probs.append(f"postgres.dsn database {pg_dsn.path!r} != POSTGRES_DB {pge.get('POSTGRES_DB')!r}")
    if (pg_dsn.username or "postgres") != pge.get("POSTGRES_USER", "postgres"):
        probs.append(f"postgres.dsn user {pg_dsn.username!r} != POSTGRES_USER")
    if not pg_dsn.password and pge.get("POSTGRES_HOST_AUTH_METHOD") != "trust":
        probs.append("postgres.dsn has no password but Postgres does not trust")
    expect("redis.url and postgres.dsn reach the published Redis and Postgres", probs)

    # --- the three instances
    sut_names = sorted(n for n in services if re.fullmatch(r"sut-\d+", n))
    url_vars = sorted(k2 for k2 in v if re.fullmatch(r"SUT_URL_\d+", k2))
    expect("three instances sut-1..3, one SUT_URL_N per instance",
           [] if sut_names == ["sut-1", "sut-2", "sut-3"] and url_vars == ["SUT_URL_1", "SUT_URL_2", "SUT_URL_3"]
           else [f"services {sut_names}, vars {url_vars}"])
    probs, instances = [], set()
    for n in sut_names:
        i = n.split("-")[1]
        s = services[n]
        se = s.get("environment", {})
        cport = int(se.get("SUT_HTTP_PORT", 0))
        hp = host_port_for(s, cport)
        url = v.get(f"SUT_URL_{i}")
        if url != f"http://127.0.0.1:{hp}":
            probs.append(f"{n}: SUT_URL_{i}={url} but container port {cport} is published as {hp}")
        if v.get(f"METRICS_{i}") != f"{url}/metrics":
            probs.append(f"{n}: METRICS_{i}={v.get(f'METRICS_{i}')} is not {url}/metrics")
        t = " ".join((s.get("healthcheck") or {}).get("test", []))
        if f":{cport}/healthz" not in t:
            probs.append(f"{n}: health check {t!r} does not ask port {cport}")
        if se.get("SUT_GROUP_ID") != v.get("SUT_GROUP"):
            probs.append(f"{n}: SUT_GROUP_ID={se.get('SUT_GROUP_ID')} but SUT_GROUP={v.get('SUT_GROUP')}")
        instances.add(se.get("SUT_INSTANCE"))
        kb = se.get("SUT_KAFKA_BOOTSTRAP", "")
        if host_port(kb) not in adv.values() or host_port(kb)[0] != "kafka":
            probs.append(f"{n}: SUT_KAFKA_BOOTSTRAP={kb} is not the broker's advertised in-network listener")
        for var in ("SUT_REDIS_URL", "SUT_IDEMPOTENCY_REDIS_URL"):
            if host_port(se.get(var, "x:0")) != ("redis", 6379):
                probs.append(f"{n}: {var}={se.get(var)} is not redis:6379")
        d = urlsplit(se.get("SUT_PG_DSN", ""))
        if (d.hostname, d.port, d.path.lstrip("/")) != ("postgres", 5432, pge.get("POSTGRES_DB")):
            probs.append(f"{n}: SUT_PG_DSN={se.get('SUT_PG_DSN')} is not postgres:5432/{pge.get('POSTGRES_DB')}")
        deps = s.get("depends_on") or {}
        for dep, want in (("kafka", "service_healthy"), ("redis", "service_healthy"),
                          ("postgres", "service_healthy"), ("kafka-topics", "service_completed_successfully")):
            # a one-shot job must be adopted with service_completed_successfully,
            # else `docker compose up --wait` reports its exit as a failure
            got = (deps.get(dep) or {}).get("condition") if isinstance(deps, dict) else None
            if got != want:
                probs.append(f"{n}: waits for {dep} with {got!r}, not {want}")
        if (s.get("build") or {}).get("dockerfile", "Dockerfile") != "Dockerfile" or \
                os.path.normpath((s.get("build") or {}).get("context", "")) != "sut":
            probs.append(f"{n}: not built from sut/Dockerfile ({s.get('build')})")
    if len(instances) != len(sut_names):
        probs.append(f"SUT_INSTANCE values not distinct: {sorted(map(str, instances))}")
    if v.get("SUT_URL") != v.get("SUT_URL_1"):
        probs.append("SUT_URL is not SUT_URL_1")
    expect("sut-1..3: published ports = SUT_URL_N / METRICS_N, one group = SUT_GROUP, wired to kafka/redis/postgres",
           probs)

    # --- topics the one-shot job creates
    cmd = services.get("kafka-topics", {}).get("command", "")
    cmd = " ".join(cmd) if isinstance(cmd, list) else str(cmd)
    m = re.search(r"for t in ([^;]+);", cmd)
    made = set(m.group(1).split()) if m else set()
    probs = []
    if made != set(etopics):
        probs.append(f"kafka-topics creates {sorted(made)}, the environment declares {sorted(etopics)}")
    pm = re.search(r"--partitions (\d+)", cmd)
    if not pm or any(p is not None and p != int(pm.group(1)) for p in etopics.values()):
        probs.append(f"partitions: job {pm.group(1) if pm else None}, environment {etopics}")
    if services.get("kafka-topics", {}).get("image") != k.get("image"):
        probs.append("kafka-topics does not use the broker's image (its CLI tools)")
    if "--bootstrap-server kafka:" not in cmd:
        probs.append("kafka-topics does not dial the broker by its service name")
    expect("the kafka-topics job creates exactly the environment's topics with its partition counts", probs)


PORT_SPEC = re.compile(r"^127\.0\.0\.1:\$\{(EVENTRIG_[A-Z0-9_]+_PORT):-(\d+)\}:(\d+)$")


def compose_env_sh(environ):
    """runs ci/compose-env.sh with environ (and PATH); {NAME: value}"""
    r = subprocess.run(["bash", os.path.join(ROOT, "ci/compose-env.sh")], capture_output=True, text=True,
                       env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **environ}, timeout=30)
    if r.returncode != 0:
        return None, f"exit {r.returncode}: {r.stderr.strip()}"
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line), None


def check_per_run(c_raw, env_raw, local):
    """nothing fixed per Docker host; the state section; and the port
    checks of check_compose again with the ports of one run."""
    # the stack that persists between runs is where stale idempotency keys
    # pile up: the same stale-state audit and failure verdicts as locally
    expect("ci/compose.env.json has ci/local.env.json's \"state\" section (stale-state audit, verdicts)",
           [] if env_raw.get("state") and env_raw.get("state") == local.get("state")
           else [f"compose env state {json.dumps(env_raw.get('state'))} != local {json.dumps(local.get('state'))}"])

    services = c_raw.get("services") or {}
    probs = []
    if "name" in c_raw:
        probs.append(f"top-level name: {c_raw['name']!r} (the pipeline names the project with "
                     "COMPOSE_PROJECT_NAME; docker-compose v1 also rejects the key)")
    for n, sv in services.items():
        if "container_name" in sv:
            probs.append(f"{n}: container_name {sv['container_name']!r} is one per Docker host")
        if "build" in sv and "image" in sv and "COMPOSE_PROJECT_NAME" not in str(sv["image"]):
            probs.append(f"{n}: builds into the fixed image {sv['image']!r}, which another project's build replaces")
    for kind in ("volumes", "networks"):
        for n, v in (c_raw.get(kind) or {}).items():
            if isinstance(v, dict) and ("name" in v or v.get("external")):
                probs.append(f"{kind} {n}: a fixed or external name is shared by every project")
    expect("docker-compose.test.yml names no project, container, image, volume or network of its own "
           "(COMPOSE_PROJECT_NAME names them)", probs)

    # every host port: ${EVENTRIG_*_PORT:-default}, one variable per port
    probs, port_vars = [], {}
    for n, sv in services.items():
        for p in sv.get("ports", []):
            m = PORT_SPEC.match(str(p))
            if not m:
                probs.append(f"{n}: {p!r} is not \"127.0.0.1:${{EVENTRIG_..._PORT:-N}}:PORT\"")
            elif m.group(1) in port_vars:
                probs.append(f"{n}: {m.group(1)} also publishes {port_vars[m.group(1)][0]}")
            else:
                port_vars[m.group(1)] = (n, m.group(2))
    expect("docker-compose.test.yml: every host port is chosen per run (${EVENTRIG_*_PORT:-default}, "
           "one variable each)", probs)

    # ci/compose.env.json reads the same variables with the same defaults
    text = json.dumps(env_raw)
    probs = []
    refs = {}
    for m in ENV_REF.finditer(text):
        if m.group(1).startswith("EVENTRIG_") and m.group(1).endswith("_PORT"):
            refs.setdefault(m.group(1), set()).add(m.group(2))
    for var, (n, default) in sorted(port_vars.items()):
        if var not in refs:
            probs.append(f"{var} ({n}) is not read")
        elif refs[var] != {default}:
            probs.append(f"{var}: defaults {sorted(map(str, refs[var]))}, the Compose file's is {default}")
    for var in sorted(set(refs) - set(port_vars)):
        probs.append(f"{var} is read but the Compose file publishes no port with it")
    fixed = sorted(set(re.findall(r"127\.0\.0\.1:\d+", text)))
    if fixed:
        probs.append(f"fixed addresses: {fixed}")
    expect("ci/compose.env.json reads every port variable with the Compose file's default, "
           "and no fixed port", probs)

    # ci/compose-env.sh: the project name from the pipeline, a free port each
    probs = []
    out = {}
    for environ, want in (({"CI_JOB_ID": "4242"}, "eventrig-4242"),
                          ({"GITHUB_RUN_ID": "77", "GITHUB_RUN_ATTEMPT": "2", "GITHUB_JOB": "compose"},
                           "eventrig-77-2-compose"),
                          ({"BUILD_TAG": "jenkins-Team/Job-9"}, "eventrig-jenkins-team-job-9"),
                          ({"COMPOSE_PROJECT_NAME": "mine", "CI_JOB_ID": "1"}, "mine")):
        try:
            out, err = compose_env_sh(environ)
        except (OSError, subprocess.SubprocessError) as e:
            out, err = None, e
        if out is None:
            probs.append(f"ci/compose-env.sh with {environ}: {err}")
            continue
        if out.get("COMPOSE_PROJECT_NAME") != want:
            probs.append(f"with {environ}: COMPOSE_PROJECT_NAME={out.get('COMPOSE_PROJECT_NAME')}, not {want}")
    if out:
        ports = {k: v for k, v in out.items() if k != "COMPOSE_PROJECT_NAME"}
        if set(ports) != set(port_vars):
            probs.append(f"prints {sorted(ports)}, the Compose file's variables are {sorted(port_vars)}")
        if not all(v.isdigit() and 1024 < int(v) < 65536 for v in ports.values()) or \
                len(set(ports.values())) != len(ports):
            probs.append(f"ports not distinct unprivileged numbers: {ports}")
    expect("ci/compose-env.sh prints the pipeline's project name (CI_JOB_ID, GITHUB_RUN_ID, BUILD_TAG) "
           "and a distinct free port for each port variable", probs)
    return port_vars


def check_run_ports(c_raw, env_raw, local, port_vars):
    """the consistency checks of check_compose once more with the ports of
    one run: each variable set to a port unlike its default"""
    global CAPTURE
    run = {var: str(41000 + i) for i, var in enumerate(sorted(port_vars))}
    c = compose_interp(c_raw, run)
    probs = []
    for var, (n, _) in port_vars.items():
        got = [hp for _, hp, _ in published(c["services"][n])]
        if int(run[var]) not in got:
            probs.append(f"{n}: {var}={run[var]} but published {got}")
    CAPTURE = []
    try:
        check_compose(c, env_resolve(env_raw, run), local)
    finally:
        probs += CAPTURE
        CAPTURE = None
    expect("with one run's ports (" + ", ".join(f"{k}={v}" for k, v in sorted(run.items())) +
           ") the Compose file and ci/compose.env.json still agree", probs)


def check_dockerfile(path, binary):
    try:
        text = open(path, encoding="utf-8").read()
    except OSError as e:
        report(False, "sut/Dockerfile exists", [e])
        return
    text = re.sub(r"\\\n", " ", text)
    stages = re.split(r"^FROM\s+", text, flags=re.M)[1:]
    froms = [s.split("\n", 1)[0].strip() for s in stages]
    installs = []
    for s in stages:
        pk = set()
        for m in re.finditer(r"apt-get install ([^&\n]+)", s):
            pk |= {w for w in m.group(1).split() if not w.startswith("-")}
        installs.append(pk)
    probs = []
    if len(stages) != 2 or not froms[0].startswith("debian:12") or not froms[1].startswith("debian:12"):
        probs.append(f"stages: {froms}")
    need = {"librdkafka-dev", "libhiredis-dev", "libpq-dev", "libjansson-dev", "libssl-dev",
            "libmicrohttpd-dev", "pkg-config", "build-essential"}
    if stages and need - installs[0]:
        probs.append(f"build stage lacks {sorted(need - installs[0])}")
    if len(stages) == 2 and "curl" not in installs[1]:
        probs.append("runtime stage lacks curl (the health check's tool)")
    if "make eventrig-sut" not in text or "COPY --from=build /src/sut/eventrig-sut" not in text:
        probs.append("the release binary is not built with sut/Makefile and copied")
    expect("sut/Dockerfile: Debian 12 build stage with sut's packages, runtime stage with curl", probs)
    # the runtime stage must hold the package of every library the service
    # links directly (as this Debian 12 machine resolves them)
    probs = []
    try:
        od = subprocess.run(["objdump", "-p", binary], capture_output=True, text=True, check=True).stdout
        ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        report(False, "sut/Dockerfile's runtime stage has every linked library's package", [f"{binary}: {e}"])
        return
    where = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
    for lib in re.findall(r"NEEDED\s+(\S+)", od):
        p = where.get(lib)
        if not p:
            probs.append(f"{lib}: not resolved by ldd")
            continue
        r = subprocess.run(["dpkg", "-S", os.path.realpath(p)], capture_output=True, text=True)
        if r.returncode != 0:
            r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        pkg = r.stdout.split(":", 1)[0] if r.returncode == 0 else None
        if pkg is None:
            probs.append(f"{lib} ({p}): no Debian package owns it")
        elif pkg not in ("libc6",) and len(installs) == 2 and pkg not in installs[1]:
            probs.append(f"{lib} comes from {pkg}, which the runtime stage does not install")
    expect("sut/Dockerfile's runtime stage has every linked library's package", probs)


def steps_text(steps):
    return [(s.get("uses", ""), s.get("run", ""), s.get("with", {}) or {}, s.get("if", "")) for s in steps]


def run_args(cmd):
    """eventrig run's --env, --junit, --filter and --shard from a shell command
    (a GitHub expression ${{ ... }} kept as one word)."""
    cmd = re.sub(r"\$\{\{(.*?)\}\}", lambda m: "${{" + m.group(1).replace(" ", "") + "}}", cmd)
    words = shlex.split(cmd)
    out = {}
    for i, w in enumerate(words):
        if w in ("--env", "--junit", "--filter", "--shard") and i + 1 < len(words):
            out[w] = words[i + 1]
    return out


def proxy_families():
    """scenario families (folders) whose scenarios need eventrig's proxies or
    service steps, which the Compose stack cannot offer."""
    fams, all_fams = set(), set()
    sdir = os.path.join(ROOT, "scenarios")
    for fam in sorted(os.listdir(sdir)):
        fdir = os.path.join(sdir, fam)
        if not os.path.isdir(fdir):
            continue
        all_fams.add(fam)
        for f in os.listdir(fdir):
            t = open(os.path.join(fdir, f), encoding="utf-8").read()
            if re.search(r'"fault"|"service\.(stop|kill|start|restart)"|\$\{proxy\.', t):
                fams.add(fam)
    return fams, all_fams


# --- GitHub expressions (the subset the templates use) -----------------------
# Enough of https://docs.github.com/actions/learn-github-actions/expressions
# to evaluate a step's or job's `if:` for a given event: && || ! == != ( ),
# 'strings', true/false/null, numbers, context paths, and the status
# functions. == and != compare strings case-insensitively, as GitHub does.
EXPR_TOKEN = re.compile(r"\s*(?:(\|\||&&|==|!=|!|\(|\)|,)|'((?:[^']|'')*)'|"
                        r"([A-Za-z_][A-Za-z0-9_.\-\[\]*]*)|(-?\d+(?:\.\d+)?))")


def gh_eval(expr, ctx, status="success"):
    """value of the `if:` expression expr with contexts ctx (a dict of
    dicts: github, env, matrix, ...) and the job's status so far."""
    text = expr.strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    if not re.search(r"\b(always|success|failure|cancelled)\s*\(", text):
        text = f"success() && ({text})"   # GitHub's implicit status check
    toks, pos = [], 0
    while pos < len(text):
        m = EXPR_TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise ValueError(f"cannot read {text[pos:]!r}")
        pos = m.end()
        if m.group(1):
            toks.append(("op", m.group(1)))
        elif m.group(2) is not None:
            toks.append(("val", m.group(2).replace("''", "'")))
        elif m.group(3):
            toks.append(("name", m.group(3)))
        else:
            toks.append(("val", float(m.group(4))))
    i = 0

    def peek():
        return toks[i] if i < len(toks) else (None, None)

    def take():
        nonlocal i
        i += 1
        return toks[i - 1]

    def lookup(path):
        cur = ctx
        for part in path.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        return cur

    def primary():
        kind, v = take()
        if kind == "op" and v == "(":
            x = orx()
            take()
            return x
        if kind == "val":
            return v
        if kind == "name":
            if v in ("true", "false", "null"):
                return {"true": True, "false": False, "null": None}[v]
            if peek() == ("op", "("):
                take()
                take()  # ')': the status functions take no argument
                return {"always": True, "success": status == "success", "failure": status == "failure",
                        "cancelled": status == "cancelled"}[v]
            return lookup(v)
        raise ValueError(f"unexpected {v!r}")

    def norm(x):
        return x.lower() if isinstance(x, str) else x

    def cmp():
        a = primary()
        if peek() in (("op", "=="), ("op", "!=")):
            op = take()[1]
            b = primary()
            return (norm(a) == norm(b)) == (op == "==")
        return a

    def unary():
        if peek() == ("op", "!"):
            take()
            return not unary()
        return cmp()

    def andx():
        x = unary()
        while peek() == ("op", "&&"):
            take()
            y = unary()
            x = x and y
        return x

    def orx():
        x = andx()
        while peek() == ("op", "||"):
            take()
            y = andx()
            x = x or y
        return x
    out = orx()
    if i != len(toks):
        raise ValueError(f"trailing {toks[i:]}")
    return bool(out) and out not in ("", 0)


REPO = "owner/eventrig"
GH_EVENTS = {   # name: (github context, may the token write checks)
    "push": ({"event_name": "push", "repository": REPO, "event": {}}, True),
    "workflow_dispatch": ({"event_name": "workflow_dispatch", "repository": REPO, "event": {}}, True),
    "pull request from a branch": ({"event_name": "pull_request", "repository": REPO, "event": {
        "pull_request": {"head": {"repo": {"full_name": REPO, "fork": False}}}}}, True),
    "pull request from a fork": ({"event_name": "pull_request", "repository": REPO, "event": {
        "pull_request": {"head": {"repo": {"full_name": "someone/eventrig", "fork": True}}}}}, False),
}


# --- action majors ------------------------------------------------------------
# the current major of every action the templates use (December 2026);
# an action not listed here is an action nobody vetted
ACTION_MAJORS = {
    "actions/checkout": 7,
    "actions/cache": 6,
    "actions/upload-artifact": 7,
    "actions/download-artifact": 8,
    "mikepenz/action-junit-report": 6,
}


def check_action_majors(workflows):
    probs = []
    for rel, w in workflows.items():
        for jn, j in (w.get("jobs") or {}).items():
            for st in j.get("steps") or []:
                u = st.get("uses")
                if not u:
                    continue
                name, _, ref = u.partition("@")
                m = re.fullmatch(r"v(\d+)(?:\.\d+){0,2}", ref)
                if name not in ACTION_MAJORS:
                    probs.append(f"{rel} {jn}: {u}: not a vetted action ({', '.join(ACTION_MAJORS)})")
                elif not m:
                    probs.append(f"{rel} {jn}: {u}: not a release tag vN")
                elif int(m.group(1)) < ACTION_MAJORS[name]:
                    probs.append(f"{rel} {jn}: {u}: the current major is v{ACTION_MAJORS[name]}")
    expect("GitHub workflows: every action is a vetted one at its current major ("
           + ", ".join(f"{k}@v{v}" for k, v in ACTION_MAJORS.items()) + ")", probs)


# --- ci/deps.sh groups ----------------------------------------------------------
DEPS_GROUPS = {}


def deps_list(group):
    """the packages of a ci/deps.sh group (None: not a group)"""
    if group not in DEPS_GROUPS:
        r = subprocess.run(["bash", os.path.join(ROOT, "ci/deps.sh"), "--list", group],
                           capture_output=True, text=True, timeout=30)
        DEPS_GROUPS[group] = set(r.stdout.split()) if r.returncode == 0 and r.stdout.strip() else None
    return DEPS_GROUPS[group]


def deps_calls(lines):
    """[(groups, apt-archives dir or None)] of every ci/deps.sh call in
    shell lines"""
    out = []
    for line in "\n".join(lines).replace("\\\n", " ").splitlines():
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        lex.commenters = "#"
        try:
            toks = list(lex)
        except ValueError:
            continue
        cmds, cur = [], []
        for t in toks + [";"]:
            if t and set(t) <= set(";&|()"):
                cmds.append(cur)
                cur = []
            else:
                cur.append(t)
        for words in cmds:
            while words and words[0] in ("sudo", "-E", "env"):
                words = words[1:]
            if not words or not words[0].endswith("ci/deps.sh"):
                continue
            groups, archives, k = [], None, 1
            while k < len(words):
                if words[k] == "--apt-archives" and k + 1 < len(words):
                    archives = words[k + 1]
                    k += 1
                elif not words[k].startswith("-"):
                    groups.append(words[k])
                k += 1
            out.append((groups, archives))
    return out


def needed_groups(runs, compose_env_rel):
    """the one ci/deps.sh group a job's commands need: demo to run the
    suite on the local stack (eventrig starts Redis, Postgres and the
    service), build to run it against a stack that is already there"""
    envs = {run_args(r).get("--env") for r in runs if "./eventrig run" in r}
    return {"demo"} if envs - {compose_env_rel} else {"build"}


def check_deps_use(jobs_runs, compose_env_rel):
    """jobs_runs: {label: [shell lines]}"""
    probs = []
    for g in ("build", "demo", "kafka", "test", "lint", "all"):
        if deps_list(g) is None:
            probs.append(f"ci/deps.sh --list {g} fails")
    if not probs:
        for small, big in (("build", "demo"), ("demo", "test"), ("kafka", "test"), ("build", "lint")):
            if not deps_list(small) <= deps_list(big):
                probs.append(f"group {big} lacks {sorted(deps_list(small) - deps_list(big))} of {small}")
        everything = set().union(*(deps_list(g) for g in ("build", "demo", "kafka", "test", "lint")))
        if deps_list("all") != everything:
            probs.append("group all is not every group")
    for label, runs in jobs_runs.items():
        calls = deps_calls(runs)
        if any(re.search(r"\bmake deps\b", r) for r in runs):
            probs.append(f"{label}: make deps installs every group")
        if len(calls) != 1:
            probs.append(f"{label}: {len(calls)} ci/deps.sh calls")
            continue
        want = needed_groups(runs, compose_env_rel)
        got = set(calls[0][0])
        if got != want:
            probs.append(f"{label}: installs ci/deps.sh {' '.join(sorted(got))}, its commands need {' '.join(want)}")
        for g in got:
            if deps_list(g) is None:
                probs.append(f"{label}: {g} is not a ci/deps.sh group")
    expect("ci/deps.sh groups nest (build in demo, demo and kafka in test, build in lint, all = every group); "
           "CI templates install only the group their job uses (local stack: demo, merging reports and "
           "Compose stack: build)", probs)


def check_makefile():
    probs = []
    try:
        text = open(os.path.join(ROOT, "Makefile"), encoding="utf-8").read()
    except OSError as e:
        report(False, "Makefile: make demo installs ci/deps.sh demo, make test installs test", [e])
        return
    for target, want in (("demo", ["demo"]), ("test", ["test"])):
        m = re.search(rf"^{target}:[^\n]*\n((?:\t[^\n]*\n)+)", text, re.M)
        recipe = m.group(1) if m else ""
        head = text[m.start():text.index("\n", m.start())] if m else ""
        calls = deps_calls(recipe.splitlines())
        if not m:
            probs.append(f"no {target} target")
        elif re.search(r"\bdeps\b", head.split(":", 1)[1]):
            probs.append(f"{target}: depends on deps (every group)")
        elif [c[0] for c in calls] != [want]:
            probs.append(f"{target}: installs {[c[0] for c in calls]}, not ci/deps.sh {' '.join(want)}")
    expect("Makefile: make demo installs ci/deps.sh demo, make test installs test", probs)


# --- shards and merging (both platforms) ------------------------------------------
MATRIX_REF = re.compile(r"\$\{\{\s*matrix\.([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}")


def matrix_subst(value, mx):
    """value with every ${{ matrix.KEY }} replaced by mx's value"""
    return MATRIX_REF.sub(lambda m: str(mx.get(m.group(1), "")), str(value))


def gh_matrix(j):
    """the combinations of a job's strategy.matrix ([{}] without one): the
    product of its lists, or its include entries when it has no list
    (the two forms the templates use)"""
    mtx = (j.get("strategy") or {}).get("matrix")
    if not isinstance(mtx, dict):
        return [{}]
    combos = [{}]
    keys = [k for k in mtx if k not in ("include", "exclude")]
    for k in keys:
        vals = mtx[k] if isinstance(mtx[k], list) else [mtx[k]]
        combos = [{**c, k: v} for c in combos for v in vals]
    if not keys and mtx.get("include"):
        combos = [dict(x) for x in mtx["include"]]
    return combos


def glob_match(pattern, name):
    """does the shell (or artifact-name) glob pattern match name? * and ?
    stop at /, as the shell's and minimatch's do"""
    rx = "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, name) is not None


def merge_reports_args(lines):
    """[(OUT, [IN...])] of every `eventrig merge-reports OUT IN...` in shell
    lines, the globs left as written"""
    out = []
    for line in "\n".join(lines).replace("\\\n", " ").splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        for i, w in enumerate(words[:-1]):
            if w.endswith("eventrig") and words[i + 1] == "merge-reports":
                rest = []
                for x in words[i + 2:]:
                    if x in (";", "&&", "||", "|"):
                        break
                    rest.append(x)
                out.append((rest[0] if rest else None, rest[1:]))
    return out


MAKE_CMD = re.compile(r"(?:^|[;&|(])\s*(?:sudo\s+)?make\b((?:[ \t]+[^\s;&|)]+)*)", re.M)


def make_targets(lines):
    """[targets] of every make command in shell lines ([] for the default
    goal); a command, not the word in `apt-get install make ...`"""
    text = "\n".join(lines).replace("\\\n", " ")
    return [[w for w in m.group(1).split() if not w.startswith("-") and "=" not in w]
            for m in MAKE_CMD.finditer(text)]


def builds_eventrig(lines):
    """does a make command in lines build eventrig (the default goal, all,
    or eventrig)?"""
    return any(not t or {"all", "eventrig"} & set(t) for t in make_targets(lines))


def check_merged_inputs(label, merge_lines, out, ins, files, probs):
    """merge-reports OUT IN... takes every file of files (the shards'
    reports where the merge job finds them), not OUT itself, and the job
    fails when fewer than len(files) reports were there"""
    for f in files:
        if not any(glob_match(os.path.normpath(i), f) for i in ins):
            probs.append(f"{label}: merge-reports {' '.join(ins)} leaves out {f}")
    if out and any(glob_match(os.path.normpath(i), os.path.normpath(out)) for i in ins):
        probs.append(f"{label}: merge-reports writes {out}, which its inputs {' '.join(ins)} match")
    text = "\n".join(merge_lines)
    tail = text[text.find("merge-reports"):]
    counts = {int(n) for n in re.findall(r"-eq\s+(\d+)", tail)}
    if not counts:
        probs.append(f"{label}: does not fail when fewer than {len(files)} shards wrote a report "
                     f"(after merge-reports, a test that the number of reports is -eq {len(files)})")
    elif counts != {len(files)}:
        probs.append(f"{label}: expects {sorted(counts)} reports, there are {len(files)} shards")


# --- GitHub -------------------------------------------------------------------
def check_github(w, rw, compose_env_rel):
    """w: ci/github-actions.yml, rw: ci/github-actions-report.yml. A job
    that runs the suite either publishes its report itself or is a matrix
    of shards (--shard ${{ matrix.K }}/N) whose reports a merge job (one
    that runs eventrig merge-reports) merges and publishes."""
    jobs = w.get("jobs") or {}
    probs, publishers = [], {}
    fork_probs, cache_probs, compose_probs, shard_probs, merge_probs = [], [], [], [], []
    jobs_runs = {}
    suite_seen = compose_seen = False
    sharded = {}    # job: {"n": N, "artifacts": [artifact name of each shard], "rel": report in the artifact}
    merges = []     # jobs that run eventrig merge-reports
    uploads = {}    # artifact name (matrix expanded): job
    publishing = set()
    if w.get("name") is None:
        probs.append("the workflow has no name (ci/github-actions-report.yml follows it by name)")
    perms = w.get("permissions")
    if not isinstance(perms, dict) or any(v not in ("read", "none") for v in perms.values()):
        fork_probs.append(f"top-level permissions {perms!r} are not read-only")

    def uploaded(steps, junit):
        """the with: of the steps that upload junit's folder with if: always()"""
        up = [(s.get("with") or {}, s.get("if", "")) for s in steps
              if s.get("uses", "").startswith("actions/upload-artifact@")]
        return [wi for wi, i in up if junit and junit.startswith(wi.get("path", "").rstrip("/") + "/")
                and "always()" in i]

    def publishes(name, j, steps, junit, up_ok):
        """does the job publish junit? Its `if:` and permissions checked"""
        pub = [s for s in steps if s.get("uses", "").startswith("mikepenz/action-junit-report@")]
        pub_ok = [s for s in pub if (s.get("with") or {}).get("report_paths") == junit]
        for s in pub_ok:
            publishing.add(name)
            publishers[name] = ((up_ok[0].get("name") if up_ok else None), s["with"].get("check_name"),
                                os.path.relpath(junit, up_ok[0].get("path", "")) if up_ok and junit else None)
            # publish where the token can write checks, even after a failure;
            # never where it cannot (403, a red job)
            for ev_name, (gh, writable) in GH_EVENTS.items():
                for status in ("success", "failure"):
                    try:
                        got = gh_eval(s.get("if", ""), {"github": gh}, status)
                    except (ValueError, KeyError, IndexError) as e:
                        fork_probs.append(f"{name}: cannot evaluate if: {s.get('if')!r}: {e}")
                        break
                    if got != writable:
                        fork_probs.append(f"{name}: publishes={got} on a {ev_name} after {status}, "
                                          f"the token {'can' if writable else 'cannot'} write checks")
            jp = j.get("permissions") or {}
            if not isinstance(jp, dict) or jp.get("checks") != "write":
                fork_probs.append(f"{name}: publishes without job permissions checks: write")
        return bool(pub_ok)

    for name, j in jobs.items():
        steps = j.get("steps") or []
        st = steps_text(steps)
        uses = [u for u, _, _, _ in st]
        runs = [r for _, r, _, _ in st]
        jobs_runs[f"GitHub {name}"] = runs
        mxs = gh_matrix(j)
        for s in steps:
            if s.get("uses", "").startswith("actions/upload-artifact@"):
                for mx in mxs:
                    uploads[matrix_subst((s.get("with") or {}).get("name", "artifact"), mx)] = name
        if not any(u.startswith("actions/checkout@") for u in uses):
            probs.append(f"{name}: no actions/checkout")
        if not any(t != ["deps"] for t in make_targets(runs)):
            probs.append(f"{name}: does not build with make")
        # the .deb files of its ci/deps.sh call are cached, keyed on ci/deps.sh
        calls = deps_calls(runs)
        di = next((k for k, r in enumerate(runs) if deps_calls([r])), None)
        ci = next((k for k, u in enumerate(uses) if u.startswith("actions/checkout@")), None)
        caches = [(k, s.get("with") or {}) for k, s in enumerate(steps)
                  if s.get("uses", "").startswith("actions/cache@")]
        archives = calls[0][1] if calls else None
        if not archives:
            cache_probs.append(f"{name}: ci/deps.sh without --apt-archives (nothing to cache)")
        elif not any(ci is not None and ci < k < di
                     and str(wi.get("path", "")).strip() == f"{archives.rstrip('/')}/*.deb"
                     and "hashFiles('ci/deps.sh')" in str(wi.get("key", "")) for k, wi in caches):
            cache_probs.append(f"{name}: no actions/cache of {archives}/*.deb keyed on hashFiles('ci/deps.sh') "
                               "between the checkout and ci/deps.sh")
        ev = [r for r in runs if "./eventrig run" in r]
        if merge_reports_args(runs) and not ev:
            merges.append(name)
            continue
        if len(ev) != 1:
            probs.append(f"{name}: {len(ev)} eventrig run steps")
            continue
        a = run_args(ev[0])
        junit = a.get("--junit")
        if not os.path.isfile(os.path.join(ROOT, a.get("--env", "-"))):
            probs.append(f"{name}: --env {a.get('--env')} does not exist")
        up_ok = uploaded(steps, junit)
        if not up_ok:
            probs.append(f"{name}: the report folder of {junit} is not uploaded with if: always()")
        if a.get("--shard") or (j.get("strategy") or {}).get("matrix"):
            # a matrix of shards: each runs its part and uploads its report
            # under a name of its own; a merge job publishes them as one
            shard = a.get("--shard", "")
            m = re.fullmatch(r"\$\{\{\s*matrix\.([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}/(\d+)", shard)
            if not m:
                shard_probs.append(f"{name}: --shard {shard!r} is not ${{{{ matrix.KEY }}}}/N")
                continue
            key, n = m.group(1), int(m.group(2))
            vals = [str(mx.get(key)) for mx in mxs]
            if sorted(vals) != sorted(str(k) for k in range(1, n + 1)):
                shard_probs.append(f"{name}: the matrix runs --shard {', '.join(v + '/' + str(n) for v in vals)}, "
                                   f"not 1/{n} .. {n}/{n} once each (matrix.{key} and the total must agree)")
            if (j.get("strategy") or {}).get("fail-fast") is not False:
                shard_probs.append(f"{name}: fail-fast is not false: a failing scenario fails its shard, "
                                   "which cancels the others, and their reports are missing from the merge")
            if up_ok:
                names = [matrix_subst(up_ok[0].get("name", "artifact"), mx) for mx in mxs]
                if len(set(names)) != len(names):
                    shard_probs.append(f"{name}: the shards upload their reports as {sorted(set(names))}: "
                                       "not one artifact name per shard (upload-artifact refuses a name twice)")
                sharded[name] = {"n": n, "artifacts": names,
                                 "rel": os.path.relpath(junit, up_ok[0].get("path", ""))}
            if any(s.get("uses", "").startswith("mikepenz/action-junit-report@") for s in steps):
                shard_probs.append(f"{name}: a shard publishes its own report, a part of the suite "
                                   "(the merge job publishes the merged one)")
        elif not publishes(name, j, steps, junit, up_ok):
            probs.append(f"{name}: {junit} is not published by a JUnit report action")
        if a.get("--env") == compose_env_rel:
            compose_seen = True
            upi = next((k for k, r in enumerate(runs) if "docker compose -f docker-compose.test.yml up" in r), None)
            if upi is None or "--wait" not in runs[upi]:
                probs.append(f"{name}: runs against the Compose stack without starting it (up --wait)")
            need, _ = proxy_families()
            filt = a.get("--filter", "")
            excl = {t[len("!tag:"):] for t in filt.split(",") if t.startswith("!tag:")}
            if excl != need:
                probs.append(f"{name}: --filter excludes {sorted(excl)}, families needing proxies are {sorted(need)}")
            # one project and one set of host ports per run
            pname = str(((j.get("env") or {}).get("COMPOSE_PROJECT_NAME")) or
                        ((w.get("env") or {}).get("COMPOSE_PROJECT_NAME")) or "")
            if not re.search(r"\$\{\{\s*github\.run_id\s*\}\}", pname) or \
                    not re.search(r"\$\{\{\s*github\.run_attempt\s*\}\}", pname):
                compose_probs.append(f"{name}: COMPOSE_PROJECT_NAME {pname!r} is not made of github.run_id "
                                     "and github.run_attempt")
            pe = next((k for k, r in enumerate(runs)
                       if re.search(r"ci/compose-env\.sh\s*>>\s*\"?\$GITHUB_ENV", r)), None)
            if pe is None or upi is None or pe > upi:
                compose_probs.append(f"{name}: no ci/compose-env.sh >> $GITHUB_ENV before docker compose up")
            downs = [(k, s.get("if", "")) for k, s in enumerate(steps)
                     if "docker compose -f docker-compose.test.yml down" in s.get("run", "")]
            if not any("always()" in i and "-v" in runs[k].split() and "--rmi" in runs[k] for k, i in downs):
                compose_probs.append(f"{name}: no 'docker compose ... down -v --rmi local' with if: always()")
        else:
            suite_seen = True
            if a.get("--filter"):
                probs.append(f"{name}: the local stack job filters scenarios ({a['--filter']})")

    # the merge jobs: after every shard, also a failed one; every shard's
    # artifact in a folder of its own; merge-reports over all of them; the
    # merged report uploaded and published like a job's own
    shard_artifacts = {a: sj for sj, info in sharded.items() for a in info["artifacts"]}
    merged = set()
    for name in merges:
        j = jobs[name]
        steps = j.get("steps") or []
        runs = [s.get("run", "") for s in steps]
        needs = j.get("needs") or []
        needs = [needs] if isinstance(needs, str) else list(needs)
        for sj in sharded:
            if sj in needs:
                merged.add(sj)
            else:
                merge_probs.append(f"{name}: does not need {sj} (it would not wait for the shards)")
        cond = j.get("if")
        try:
            after_failure = bool(cond) and gh_eval(str(cond), {"github": GH_EVENTS["push"][0]}, "failure")
        except (ValueError, KeyError, IndexError) as e:
            merge_probs.append(f"{name}: cannot evaluate if: {cond!r}: {e}")
            after_failure = True
        if not after_failure:
            merge_probs.append(f"{name}: if: {cond!r} skips it when a shard failed (a failing scenario fails "
                               "its shard): the report showing the failure would be neither merged nor published")
        mi = next((k for k, r in enumerate(runs) if merge_reports_args([r])), None)
        mk = next((k for k, r in enumerate(runs) if builds_eventrig([r])), None)
        if mk is None or mi is None or mk > mi:
            merge_probs.append(f"{name}: eventrig is not built (make eventrig) before merge-reports")
        dls = [(k, s.get("with") or {}) for k, s in enumerate(steps)
               if s.get("uses", "").startswith("actions/download-artifact@")]
        files = []
        for art, sj in shard_artifacts.items():
            got = None
            for k, d in dls:
                path = str(d.get("path", "."))
                if d.get("name"):
                    if str(d["name"]) == art:
                        got = os.path.join(path, sharded[sj]["rel"])
                elif glob_match(str(d.get("pattern", "*")), art):
                    if str(d.get("merge-multiple", "")).lower() == "true":
                        merge_probs.append(f"{name}: merge-multiple: true extracts every shard's artifact into "
                                           f"{path}: their {sharded[sj]['rel']} overwrite each other")
                        got = os.path.join(path, sharded[sj]["rel"])
                    else:
                        got = os.path.join(path, art, sharded[sj]["rel"])
                if got and mi is not None and k > mi:
                    merge_probs.append(f"{name}: downloads {art} after merge-reports")
                if got:
                    break
            if got is None:
                merge_probs.append(f"{name}: does not download {art}")
            else:
                files.append(os.path.normpath(got))
        for art, job in uploads.items():
            if art not in shard_artifacts and any(
                    glob_match(str(d.get("pattern", "*")), art) if not d.get("name") else d["name"] == art
                    for _, d in dls):
                merge_probs.append(f"{name}: also downloads {art} (job {job}), whose report is no shard's")
        mr = merge_reports_args(runs)
        if len(mr) != 1 or not mr[0][0] or not mr[0][1]:
            merge_probs.append(f"{name}: {len(mr)} 'eventrig merge-reports OUT IN...' commands")
            continue
        out, ins = mr[0]
        check_merged_inputs(name, [runs[mi]], out, ins, files, merge_probs)
        up_ok = uploaded(steps, out)
        if not up_ok:
            merge_probs.append(f"{name}: the folder of the merged {out} is not uploaded with if: always()")
        if not publishes(name, j, steps, out, up_ok):
            merge_probs.append(f"{name}: the merged {out} is not published by a JUnit report action")
    for sj in sharded:
        if sj not in merged:
            merge_probs.append(f"{sj}: no merge job needs its shards")
    if not sharded:
        shard_probs.append("no job is a matrix of shards (--shard ${{ matrix.K }}/N)")
    if not merges:
        merge_probs.append("no job runs eventrig merge-reports")
    for name, j in jobs.items():
        jp = j.get("permissions") or {}
        if isinstance(jp, dict) and jp.get("checks") == "write" and name not in publishing:
            fork_probs.append(f"{name}: asks for checks: write but publishes nothing")
    if not suite_seen:
        probs.append("no job runs the whole suite on the local stack")
    if not compose_seen:
        probs.append(f"no job runs against the Compose stack ({compose_env_rel})")
    expect("GitHub workflow: checkout, make, the suite, reports uploaded and JUnit published", probs)
    expect("GitHub shards: the matrix lists 1..N once each for --shard ${{ matrix.K }}/N, fail-fast off, "
           "each shard uploads its report under an artifact name of its own and publishes none", shard_probs)
    expect("GitHub merge job: needs every shard, runs also after a failed one, builds eventrig, downloads each "
           "shard's artifact into a folder of its own, merges them all with merge-reports (failing when one is "
           "missing), uploads and publishes the merged report", merge_probs)
    expect("GitHub workflow: JUnit published on pushes and branch pull requests (also after a failure), "
           "skipped on pull requests from forks (read-only token); only publishing jobs may write checks",
           fork_probs)
    expect("GitHub workflow: each job caches the .deb files of its ci/deps.sh --apt-archives, "
           "keyed on hashFiles('ci/deps.sh')", cache_probs)
    expect("GitHub Compose job: project named after the run (github.run_id, run_attempt), host ports from "
           "ci/compose-env.sh before up, down -v --rmi local always", compose_probs)
    if rw is not None:
        check_github_report(w, rw, publishers, uploads, shard_artifacts)
    return jobs_runs


def check_github_report(w, rw, publishers, uploads, shard_artifacts):
    """ci/github-actions-report.yml: publishes, from a workflow_run, the
    reports that the workflow w did not publish (pull requests from forks):
    each publishing job's artifact, and no shard's (a part of the suite)"""
    probs = []
    on = rw.get("on") or rw.get(True) or {}   # YAML 1.1 reads a bare on: as true
    wr = on.get("workflow_run") if isinstance(on, dict) else None
    if not isinstance(wr, dict) or w.get("name") not in (wr.get("workflows") or []) or \
            "completed" not in (wr.get("types") or []):
        probs.append(f"not triggered by workflow_run of {w.get('name')!r} completed ({on})")
    perms = rw.get("permissions")
    if not isinstance(perms, dict) or any(v not in ("read", "none") for v in perms.values()):
        probs.append(f"top-level permissions {perms!r} are not read-only")
    runs_of = {   # the triggering run: (event, head repository) -> publish here?
        ("pull_request", "someone/eventrig"): True,
        ("pull_request", REPO): False,
        ("push", REPO): False,
    }
    seen = {}
    for jn, j in (rw.get("jobs") or {}).items():
        for (event, head), want in runs_of.items():
            gh = {"repository": REPO, "event_name": "workflow_run", "event": {"workflow_run": {
                "event": event, "head_repository": {"full_name": head}, "id": 1, "head_sha": "abc"}}}
            try:
                got = gh_eval(j.get("if", ""), {"github": gh})
            except (ValueError, KeyError, IndexError) as e:
                probs.append(f"{jn}: cannot evaluate if: {j.get('if')!r}: {e}")
                break
            if got != want:
                probs.append(f"{jn}: runs={got} for a {event} run from {head}")
        jp = j.get("permissions") or {}
        if jp.get("checks") != "write" or jp.get("actions") != "read":
            probs.append(f"{jn}: permissions {jp} lack checks: write and actions: read")
        steps = j.get("steps") or []
        for s in steps:
            if s.get("run") or s.get("uses", "").startswith("actions/checkout@"):
                probs.append(f"{jn}: {s.get('name') or s.get('uses') or 'a step'} checks out or runs code "
                             "(it has a write token; the pull request's files are data)")
        dl = [s.get("with") or {} for s in steps if s.get("uses", "").startswith("actions/download-artifact@")]
        pub = [s.get("with") or {} for s in steps if s.get("uses", "").startswith("mikepenz/action-junit-report@")]
        for mx in gh_matrix(j):
            for d in dl:
                if not re.fullmatch(r"\$\{\{\s*github\.event\.workflow_run\.id\s*\}\}", str(d.get("run-id", ""))):
                    probs.append(f"{jn}: downloads without run-id: github.event.workflow_run.id")
                art = matrix_subst(d.get("name"), mx)
                if art in shard_artifacts:
                    probs.append(f"{jn}: publishes {art}, one shard's part of the suite, as a check of its own")
                elif art not in uploads:
                    probs.append(f"{jn}: downloads {art}, which no job of {w.get('name')!r} uploads")
                for p in pub:
                    if not re.fullmatch(r"\$\{\{\s*github\.event\.workflow_run\.head_sha\s*\}\}",
                                        str(p.get("commit", ""))):
                        probs.append(f"{jn}: publishes without commit: github.event.workflow_run.head_sha")
                    rel = os.path.relpath(matrix_subst(p.get("report_paths", ""), mx),
                                          matrix_subst(d.get("path", "."), mx))
                    seen[(art, matrix_subst(p.get("check_name"), mx), rel)] = jn
    for job, key in publishers.items():
        if key not in seen:
            probs.append(f"{job}'s artifact {key[0]!r} ({key[2]}) is not published as {key[1]!r}")
    expect("ci/github-actions-report.yml publishes the reports of pull requests from forks "
           "(workflow_run: downloads each publishing job's artifact, the merged shards' and no shard's, "
           "publishes it on the head commit, runs no code)", probs)


# --- GitLab ---------------------------------------------------------------------
NODE_INDEX = re.compile(r"\$(?:\{CI_NODE_INDEX\}|CI_NODE_INDEX\b)")
NODE_TOTAL = re.compile(r"\$(?:\{CI_NODE_TOTAL\}|CI_NODE_TOTAL\b)")


def gl_needs(j):
    """[(job, with its artifacts?)] of a job's needs"""
    out = []
    for n in j.get("needs") or []:
        if isinstance(n, str):
            out.append((n, True))
        elif isinstance(n, dict) and n.get("job"):
            out.append((n["job"], n.get("artifacts", True) is not False))
    return out


def gl_keeps(art, path):
    """do artifacts:paths keep path (the file, or a folder above it)?"""
    return any(path and (path == p or path.startswith(p.rstrip("/") + "/")) for p in art.get("paths") or [])


def check_gitlab(g, compose_env_rel):
    """A job that runs the suite either hands GitLab its report itself or
    runs as `parallel: N` shards (CI_NODE_INDEX/CI_NODE_TOTAL), whose
    reports a merge job in a later stage merges and hands GitLab."""
    probs, cache_probs, compose_probs, shard_probs, merge_probs = [], [], [], [], []
    jobs_runs = {}
    jobs = {n: j for n, j in g.items() if isinstance(j, dict) and ("script" in j)}
    stages = g.get("stages") or ["build", "test", "deploy"]   # GitLab's default stages
    stage_order = [".pre"] + list(stages) + [".post"]
    if not jobs:
        probs.append("no job with a script")
    compose_seen = False
    sharded, merges, cache_keys = {}, [], {}
    for name, j in jobs.items():
        script = list(j.get("before_script", [])) + list(j.get("script", []))
        jobs_runs[f"GitLab {name}"] = script
        if "image" in j and j.get("image") != "debian:12":
            probs.append(f"{name}: image {j.get('image')!r} is not debian:12")
        if j.get("stage", "test") not in stage_order:
            probs.append(f"{name}: stage {j.get('stage')!r} is not one of stages: {stages}")
        calls = deps_calls(script)
        if "image" in j:
            # a container job downloads its packages every time: cache them
            archives = calls[0][1] if calls else None
            cache = j.get("cache") or {}
            key = cache.get("key")
            files = (key.get("files") or []) if isinstance(key, dict) else []
            if not archives:
                cache_probs.append(f"{name}: ci/deps.sh without --apt-archives (nothing to cache)")
            elif f"{archives.rstrip('/')}/*.deb" not in (cache.get("paths") or []) or "ci/deps.sh" not in files:
                cache_probs.append(f"{name}: cache {cache} does not keep {archives}/*.deb keyed on ci/deps.sh")
            else:
                # jobs sharing a key share the cache: the last to finish saves
                # its .deb files over the other's
                ck = json.dumps(key, sort_keys=True)
                cache_keys.setdefault(ck, {})[name] = " ".join(sorted(calls[0][0]))
        ev = [s for s in script if "./eventrig run" in s]
        if merge_reports_args(script) and not ev:
            merges.append(name)
            continue
        if len(ev) != 1:
            probs.append(f"{name}: {len(ev)} eventrig run lines")
            continue
        a = run_args(ev[0])
        junit = a.get("--junit")
        art = j.get("artifacts") or {}
        if art.get("when") != "always":
            probs.append(f"{name}: artifacts not kept when the suite fails (when: always)")
        if not gl_keeps(art, junit):
            probs.append(f"{name}: artifacts:paths {art.get('paths')} does not keep {junit}")
        par = j.get("parallel")
        if par is not None:
            # shards: GitLab sets CI_NODE_INDEX/CI_NODE_TOTAL, eventrig's --shard
            if not isinstance(par, int) or par < 2:
                shard_probs.append(f"{name}: parallel: {par!r} is not a number of shards")
                continue
            shard = a.get("--shard")
            m = re.fullmatch(r"\$\{?CI_NODE_INDEX\}?/(\$\{?CI_NODE_TOTAL\}?|\d+)", shard or "")
            if shard and (not m or (m.group(1).isdigit() and int(m.group(1)) != par)):
                shard_probs.append(f"{name}: --shard {shard} with parallel: {par}: each node must run its own "
                                   "part (no --shard: eventrig reads CI_NODE_INDEX/CI_NODE_TOTAL)")
            files = [os.path.normpath(NODE_TOTAL.sub(str(par), NODE_INDEX.sub(str(k), junit or "")))
                     for k in range(1, par + 1)]
            if len(set(files)) != len(files):
                shard_probs.append(f"{name}: every node writes {junit}: in the merge job their artifacts "
                                   "overwrite each other (name it after $CI_NODE_INDEX)")
            if (art.get("reports") or {}).get("junit"):
                shard_probs.append(f"{name}: artifacts:reports:junit of each node: GitLab would count its "
                                   "tests again beside the merged report")
            sharded[name] = {"n": par, "files": files, "stage": j.get("stage", "test")}
        elif (art.get("reports") or {}).get("junit") != junit:
            probs.append(f"{name}: artifacts:reports:junit {art.get('reports')} is not {junit}")
        if a.get("--env") == compose_env_rel:
            compose_seen = True
            need, _ = proxy_families()
            excl = {t[len("!tag:"):] for t in a.get("--filter", "").split(",") if t.startswith("!tag:")}
            if excl != need:
                probs.append(f"{name}: --filter excludes {sorted(excl)}, families needing proxies are {sorted(need)}")
            pname = str((j.get("variables") or {}).get("COMPOSE_PROJECT_NAME", ""))
            if not re.search(r"\$\{?CI_JOB_ID\b", pname):
                compose_probs.append(f"{name}: COMPOSE_PROJECT_NAME {pname!r} is not made of CI_JOB_ID")
            upi = next((k for k, s in enumerate(script) if "docker compose -f docker-compose.test.yml up" in s), None)
            pe = next((k for k, s in enumerate(script) if "ci/compose-env.sh" in s), None)
            if upi is None or "--wait" not in script[upi]:
                compose_probs.append(f"{name}: does not start the stack with up --wait")
            elif pe is None or pe > upi or not any("set -a" in s and "compose.env" in s for s in script[pe:upi]):
                compose_probs.append(f"{name}: the ports of ci/compose-env.sh are not exported before up")
            after = j.get("after_script") or []
            if not any("docker compose -f docker-compose.test.yml down" in s and " -v" in s and "--rmi" in s
                       for s in after):
                compose_probs.append(f"{name}: no 'docker compose ... down -v --rmi local' in after_script")
            if not j.get("rules") or not j.get("tags"):
                compose_probs.append(f"{name}: not limited to a runner with Docker (rules and tags)")
    for ck, users in cache_keys.items():
        if len(set(users.values())) > 1:
            cache_probs.append(f"{', '.join(sorted(users))} install different groups "
                               f"({', '.join(sorted(set(users.values())))}) under one cache key {ck}")

    # the merge jobs: after every node, also a failed one, with their
    # artifacts; merge-reports over all their reports; the merged report
    # handed to GitLab
    merged = set()
    for name in merges:
        j = jobs[name]
        script = list(j.get("before_script", [])) + list(j.get("script", []))
        needs = gl_needs(j)
        stage = j.get("stage", "test")
        for sj, info in sharded.items():
            if (sj, True) in needs:
                merged.add(sj)
            else:
                merge_probs.append(f"{name}: does not need {sj} with its artifacts (needs: {needs})")
            if stage in stage_order and info["stage"] in stage_order and \
                    stage_order.index(stage) <= stage_order.index(info["stage"]):
                merge_probs.append(f"{name}: stage {stage} is not later than {sj}'s ({info['stage']})")
        if j.get("when") != "always":
            merge_probs.append(f"{name}: when: {j.get('when', 'on_success')}: skipped when a node failed "
                               "(a failing scenario fails its node): the report showing it would not be merged")
        mi = next((k for k, s in enumerate(script) if merge_reports_args([s])), None)
        mk = next((k for k, s in enumerate(script) if builds_eventrig([s])), None)
        if mk is None or mi is None or mk > mi:
            merge_probs.append(f"{name}: eventrig is not built (make eventrig) before merge-reports")
        mr = merge_reports_args(script)
        if len(mr) != 1 or not mr[0][0] or not mr[0][1]:
            merge_probs.append(f"{name}: {len(mr)} 'eventrig merge-reports OUT IN...' commands")
            continue
        out, ins = mr[0]
        files = [f for info in sharded.values() for f in info["files"]]
        check_merged_inputs(name, script[mi:], out, ins, files, merge_probs)
        art = j.get("artifacts") or {}
        if art.get("when") != "always":
            merge_probs.append(f"{name}: artifacts not kept when a node failed (when: always)")
        if (art.get("reports") or {}).get("junit") != out:
            merge_probs.append(f"{name}: artifacts:reports:junit {art.get('reports')} is not the merged {out}")
        if not gl_keeps(art, out):
            merge_probs.append(f"{name}: artifacts:paths {art.get('paths')} does not keep {out}")
    for sj in sharded:
        if sj not in merged:
            merge_probs.append(f"{sj}: no merge job needs its nodes")
    if not sharded:
        shard_probs.append("no job runs the suite as parallel: N shards")
    if not merges:
        merge_probs.append("no job runs eventrig merge-reports")
    expect("GitLab CI: debian:12, declared stages, the suite, artifacts:reports:junit = the --junit file, "
           "when: always", probs)
    expect("GitLab shards: parallel: N runs the suite in N parts (CI_NODE_INDEX/CI_NODE_TOTAL as --shard), "
           "each node keeps a report of its own, none exposed as artifacts:reports:junit", shard_probs)
    expect("GitLab merge job: in a later stage, needs every node with its artifacts, when: always, builds "
           "eventrig, merges every node's report (failing when one is missing), the merged file as "
           "artifacts:reports:junit", merge_probs)
    expect("GitLab CI: the container job caches the .deb files of its ci/deps.sh --apt-archives, "
           "keyed on ci/deps.sh (one key per package group)", cache_probs)
    if compose_seen:
        expect("GitLab Compose job: project named after CI_JOB_ID, host ports from ci/compose-env.sh before up, "
               "down -v --rmi local in after_script", compose_probs)
    return jobs_runs


def main():
    c = load_yaml("docker-compose.test.yml")
    gh = load_yaml("ci/github-actions.yml")
    ghr = load_yaml("ci/github-actions-report.yml")
    gl = load_yaml("ci/gitlab-ci.yml")
    env = load_json("ci/compose.env.json")
    local = load_json("ci/local.env.json")
    if c is not None and env is not None and local is not None:
        # the default ports (no variable set), then one run's
        check_compose(compose_interp(c, {}), env_resolve(env, {}), local)
        port_vars = check_per_run(c, env, local)
        check_run_ports(c, env, local, port_vars)
    check_dockerfile(os.path.join(ROOT, "sut/Dockerfile"), os.path.join(ROOT, "sut/eventrig-sut"))
    jobs_runs = {}
    if gh is not None:
        jobs_runs.update(check_github(gh, ghr, "ci/compose.env.json"))
        check_action_majors({"ci/github-actions.yml": gh, **({"ci/github-actions-report.yml": ghr} if ghr else {})})
    if gl is not None:
        jobs_runs.update(check_gitlab(gl, "ci/compose.env.json"))
    check_deps_use(jobs_runs, "ci/compose.env.json")
    check_makefile()
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
