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
  on; the Kafka listeners advertise what eventrig and the services dial);
- ci/compose.env.json starts nothing and declares what ci/local.env.json
  declares (same vars, same topics), so the same scenarios run on both;
- every service has a health check and dependencies wait for health;
- sut/Dockerfile builds with the packages sut/ needs and its runtime stage
  holds the package of every library the service links, and curl;
- the CI templates install, build, run the suite and publish the JUnit file
  the run writes; the Compose job filters out exactly the scenario families
  that need fault proxies or service steps.
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


def report(ok, desc, detail=()):
    global FAILED
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
        n = host_lis[0]
        if lis.get(n, (None, None))[1] != bp:
            probs.append(f"listener {n} does not listen on {bp} in the container")
        if host_port_for(k, bp) != bp:
            probs.append(f"container port {bp} is not published as host port {bp} ({k.get('ports')})")
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
    """eventrig run's --env, --junit and --filter from a shell command."""
    words = shlex.split(cmd)
    out = {}
    for i, w in enumerate(words):
        if w in ("--env", "--junit", "--filter") and i + 1 < len(words):
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


def check_github(w, compose_env_rel):
    jobs = w.get("jobs") or {}
    probs = []
    suite_seen = compose_seen = False
    for name, j in jobs.items():
        st = steps_text(j.get("steps") or [])
        uses = [u for u, _, _, _ in st]
        runs = [r for _, r, _, _ in st]
        if not any(u.startswith("actions/checkout@") for u in uses):
            probs.append(f"{name}: no actions/checkout")
        if not any(re.search(r"\bmake deps\b", r) for r in runs):
            probs.append(f"{name}: does not run make deps")
        if not any(re.search(r"\bmake\b(?! deps)", r) for r in runs):
            probs.append(f"{name}: does not build with make")
        ev = [r for r in runs if "./eventrig run" in r]
        if len(ev) != 1:
            probs.append(f"{name}: {len(ev)} eventrig run steps")
            continue
        a = run_args(ev[0])
        junit = a.get("--junit")
        if not os.path.isfile(os.path.join(ROOT, a.get("--env", "-"))):
            probs.append(f"{name}: --env {a.get('--env')} does not exist")
        up = [(wi, i) for u, _, wi, i in st if u.startswith("actions/upload-artifact@")]
        if not up or not junit or not any(
                junit.startswith(wi.get("path", "").rstrip("/") + "/") and "always()" in i for wi, i in up):
            probs.append(f"{name}: the report folder of {junit} is not uploaded with if: always()")
        pub = [(wi, i) for u, _, wi, i in st if u.startswith("mikepenz/action-junit-report@")]
        if not pub or not any(wi.get("report_paths") == junit and "always()" in i for wi, i in pub):
            probs.append(f"{name}: {junit} is not published by a JUnit report action with if: always()")
        if a.get("--env") == compose_env_rel:
            compose_seen = True
            if not any("docker compose -f docker-compose.test.yml up" in r and "--wait" in r for r in runs):
                probs.append(f"{name}: runs against the Compose stack without starting it (up --wait)")
            need, _ = proxy_families()
            filt = a.get("--filter", "")
            excl = {t[len("!tag:"):] for t in filt.split(",") if t.startswith("!tag:")}
            if excl != need:
                probs.append(f"{name}: --filter excludes {sorted(excl)}, families needing proxies are {sorted(need)}")
        else:
            suite_seen = True
            if a.get("--filter"):
                probs.append(f"{name}: the local stack job filters scenarios ({a['--filter']})")
    if not suite_seen:
        probs.append("no job runs the whole suite on the local stack")
    if not compose_seen:
        probs.append(f"no job runs against the Compose stack ({compose_env_rel})")
    perms = w.get("permissions") or {}
    if perms.get("checks") != "write":
        probs.append("permissions: checks: write missing (the JUnit action writes a check run)")
    expect("GitHub workflow: checkout, make deps, make, the suite, reports uploaded and JUnit published", probs)


def check_gitlab(g):
    probs = []
    jobs = {n: j for n, j in g.items() if isinstance(j, dict) and ("script" in j)}
    if not jobs:
        probs.append("no job with a script")
    for name, j in jobs.items():
        script = list(j.get("before_script", [])) + list(j.get("script", []))
        if j.get("image") != "debian:12":
            probs.append(f"{name}: image {j.get('image')!r} is not debian:12")
        if not any(re.search(r"\bmake deps\b", s) for s in script):
            probs.append(f"{name}: does not run make deps")
        ev = [s for s in script if "./eventrig run" in s]
        if len(ev) != 1:
            probs.append(f"{name}: {len(ev)} eventrig run lines")
            continue
        junit = run_args(ev[0]).get("--junit")
        art = j.get("artifacts") or {}
        if art.get("when") != "always":
            probs.append(f"{name}: artifacts not kept when the suite fails (when: always)")
        if (art.get("reports") or {}).get("junit") != junit:
            probs.append(f"{name}: artifacts:reports:junit {art.get('reports')} is not {junit}")
        if not any(junit and junit.startswith(p.rstrip("/") + "/") for p in art.get("paths", [])):
            probs.append(f"{name}: artifacts:paths {art.get('paths')} does not keep {junit}'s folder")
    expect("GitLab CI: debian:12, make deps, the suite, artifacts:reports:junit = the --junit file, when: always",
           probs)


def main():
    c = load_yaml("docker-compose.test.yml")
    gh = load_yaml("ci/github-actions.yml")
    gl = load_yaml("ci/gitlab-ci.yml")
    env = load_json("ci/compose.env.json")
    local = load_json("ci/local.env.json")
    if c is not None and env is not None and local is not None:
        check_compose(c, env, local)
    check_dockerfile(os.path.join(ROOT, "sut/Dockerfile"), os.path.join(ROOT, "sut/eventrig-sut"))
    if gh is not None:
        check_github(gh, "ci/compose.env.json")
    if gl is not None:
        check_gitlab(gl)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
