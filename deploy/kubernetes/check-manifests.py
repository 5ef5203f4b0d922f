#!/usr/bin/env python3
"""Checks deploy/kubernetes against itself and against a real talkserve process.

    deploy/kubernetes/check-manifests.py --talkserve build/bin/talkserve --models-dir models

Every YAML file must parse; kustomization.yaml must list every manifest and generate the
ConfigMap and Secret the Deployment mounts; selectors, ports, volume paths and the grace
period must agree with each other and with talkserve.toml; talkserve.toml must pass
`talkserve --check-config`. Then a talkserve started on a loopback port must answer every
probe path of the Deployment with 200 once ready, and its /metrics must contain every series
the prometheus-adapter rules select, under the names the HPA uses. Run by CTest as
deploy_kubernetes_manifests. Needs python3-yaml (Debian) and no cluster.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))

# kind -> apiVersion every manifest here must use (the stable APIs of Kubernetes >= 1.23).
API_VERSIONS = {
    "Namespace": "v1",
    "Deployment": "apps/v1",
    "Service": "v1",
    "PersistentVolumeClaim": "v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1",
}
REQUIRED = [
    ("Namespace", "talkserve"),
    ("Deployment", "talkserve"),
    ("Deployment", "talkserve-redis"),
    ("Service", "talkserve"),
    ("Service", "talkserve-redis"),
    ("HorizontalPodAutoscaler", "talkserve"),
    ("PodDisruptionBudget", "talkserve"),
    ("PersistentVolumeClaim", "talkserve-models"),
]

failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL {msg}")


def check(cond, msg):
    if cond:
        print(f"ok   {msg}")
    else:
        fail(msg)
    return cond


def load_yaml_files():
    """{relative path: [documents]} for every .yaml file under HERE."""
    docs = {}
    for root, _, files in os.walk(HERE):
        for f in sorted(files):
            if not f.endswith(".yaml"):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, HERE)
            try:
                with open(path, encoding="utf-8") as fh:
                    docs[rel] = [d for d in yaml.safe_load_all(fh) if d is not None]
            except yaml.YAMLError as e:
                fail(f"{rel}: does not parse: {e}")
    return docs


def is_manifest(doc):
    return isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def parse_quantity_mib(q):
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024}
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti)", str(q))
    return int(m.group(1)) * units[m.group(2)] if m else None


def check_static(docs, config):
    kustomization = docs.get("kustomization.yaml", [{}])[0]
    check(kustomization.get("kind") == "Kustomization", "kustomization.yaml is a Kustomization")
    resources = kustomization.get("resources", [])
    for r in resources:
        check(os.path.isfile(os.path.join(HERE, r)), f"kustomization resource {r} exists")
    # Every manifest at the top level is applied (a file left out would silently not be).
    for rel, ds in docs.items():
        if os.path.dirname(rel) == "" and any(is_manifest(d) for d in ds):
            if ds[0].get("kind") != "Kustomization":
                check(rel in resources, f"{rel} is listed in kustomization.yaml resources")

    objects = {}
    for rel in resources:
        for d in docs.get(rel, []):
            if not check(is_manifest(d), f"{rel}: every document has apiVersion and kind"):
                continue
            kind, name = d["kind"], d.get("metadata", {}).get("name")
            check(bool(name), f"{rel}: {kind} has metadata.name")
            if kind in API_VERSIONS:
                check(d["apiVersion"] == API_VERSIONS[kind],
                      f"{rel}: {kind}/{name} uses {API_VERSIONS[kind]}")
            else:
                fail(f"{rel}: unexpected kind {kind}")
            objects[(kind, name)] = d
    for key in REQUIRED:
        check(key in objects, f"{key[0]}/{key[1]} is defined")
    if any(key not in objects for key in REQUIRED):
        return None

    gens = {g["name"]: g for g in kustomization.get("configMapGenerator", [])}
    secrets = {g["name"]: g for g in kustomization.get("secretGenerator", [])}
    for g in list(gens.values()) + list(secrets.values()):
        for f in g.get("files", []):
            check(os.path.isfile(os.path.join(HERE, f.split("=")[-1])), f"generator file {f} exists")

    dep = objects[("Deployment", "talkserve")]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    check(selects(spec["selector"]["matchLabels"], labels), "Deployment selector matches its pods")
    check(selects(objects[("Service", "talkserve")]["spec"]["selector"], labels),
          "Service talkserve selects the talkserve pods")
    check(selects(objects[("PodDisruptionBudget", "talkserve")]["spec"]["selector"]["matchLabels"],
                  labels), "PodDisruptionBudget selects the talkserve pods")
    redis = objects[("Deployment", "talkserve-redis")]
    redis_labels = redis["spec"]["template"]["metadata"]["labels"]
    check(selects(objects[("Service", "talkserve-redis")]["spec"]["selector"], redis_labels),
          "Service talkserve-redis selects the Redis pod")
    check(not selects(objects[("Service", "talkserve")]["spec"]["selector"], redis_labels),
          "Service talkserve does not select the Redis pod")

    (c,) = [c for c in pod["containers"] if c["name"] == "talkserve"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    http_port = config.get("http", {}).get("port", 8080)
    check(ports.get("http") == http_port, f"container port http is http.port ({http_port})")
    svc_ports = objects[("Service", "talkserve")]["spec"]["ports"]
    check(all(p["targetPort"] in ports or p["targetPort"] == http_port for p in svc_ports),
          "Service talkserve targets the container's port")
    check(config.get("http", {}).get("host") == "0.0.0.0",
          "http.host is 0.0.0.0 (the kubelet probes the pod IP)")

    probes = {}
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        p = c.get(name)
        if not check(p and "httpGet" in p, f"{name} is an HTTP probe"):
            continue
        probes[name] = p["httpGet"]["path"]
        check(p["httpGet"]["port"] in ports or p["httpGet"]["port"] == http_port,
              f"{name} uses the container's port")
    check(probes.get("livenessProbe") == "/healthz", "liveness probes /healthz")
    check(probes.get("readinessProbe") == "/readyz", "readiness probes /readyz")
    sp = c.get("startupProbe", {})
    startup_s = sp.get("periodSeconds", 10) * sp.get("failureThreshold", 3)
    check(startup_s >= 120, f"startup probe allows {startup_s} s for model loading (>= 120)")

    res = c.get("resources", {})
    check(str(res.get("requests", {}).get("nvidia.com/gpu")) == "1", "requests nvidia.com/gpu: 1")
    check(str(res.get("limits", {}).get("nvidia.com/gpu")) == "1", "limits nvidia.com/gpu: 1")
    mem_mib = parse_quantity_mib(res.get("limits", {}).get("memory"))
    max_rss = config.get("gpu", {}).get("max_rss_mb", 0)
    if mem_mib and max_rss:
        check(max_rss < mem_mib, f"gpu.max_rss_mb ({max_rss}) is below the memory limit ({mem_mib:.0f} MiB)")

    # Grace period: preStop sleep + drain_grace_ms + ~2 s of closing frames.
    pre = c.get("lifecycle", {}).get("preStop", {})
    pre_s = 0
    if "exec" in pre:
        cmd = pre["exec"]["command"]
        pre_s = int(cmd[-1]) if cmd and cmd[0].endswith("sleep") else 0
    elif "sleep" in pre:
        pre_s = int(pre["sleep"]["seconds"])
    drain_s = config.get("server", {}).get("drain_grace_ms", 10000) / 1000
    grace = pod.get("terminationGracePeriodSeconds", 30)
    check(grace >= pre_s + drain_s + 2,
          f"terminationGracePeriodSeconds {grace} >= preStop {pre_s} + drain {drain_s:g} + 2")

    # Mounts: the config file, the keys file, the models and the cache are where talkserve.toml
    # and the command line say.
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    cmd = c.get("command", []) + c.get("args", [])
    config_path = cmd[cmd.index("--config") + 1] if "--config" in cmd else None
    cfg_mount = next((m for m in mounts.values() if m["mountPath"] == config_path), None)
    if check(cfg_mount is not None, f"the --config file {config_path} is mounted"):
        vol = volumes[cfg_mount["name"]]
        check(vol.get("configMap", {}).get("name") in gens,
              "the config volume is the generated ConfigMap")
        check(cfg_mount.get("subPath") in gens.get(vol["configMap"]["name"], {}).get("files", []),
              "the config mount's subPath is the generated file")
    keys_file = config.get("gateway", {}).get("keys_file", "")
    found = False
    for name, v in volumes.items():
        if "secret" not in v or name not in mounts:
            continue
        for item in v["secret"].get("items", []):
            if os.path.join(mounts[name]["mountPath"], item["path"]) == keys_file:
                found = v["secret"]["secretName"] in secrets and any(
                    f.split("=")[-1] == item["key"] for f in secrets[v["secret"]["secretName"]]["files"])
    check(found, f"gateway.keys_file {keys_file} is mounted from the generated Secret")
    models_dir = config.get("server", {}).get("models_dir", "models")
    check(any(m["mountPath"] == models_dir for m in mounts.values()), f"server.models_dir {models_dir} is mounted")
    cache_dir = config.get("talk", {}).get("cache_dir", "")
    check(any(cache_dir.startswith(m["mountPath"] + "/") and not m.get("readOnly")
              for m in mounts.values()), f"talk.cache_dir {cache_dir} is on a writable volume")
    for name, m in mounts.items():
        check(name in volumes, f"volume mount {name} has a volume")
        if "persistentVolumeClaim" in volumes.get(name, {}):
            claim = volumes[name]["persistentVolumeClaim"]["claimName"]
            check(("PersistentVolumeClaim", claim) in objects, f"PVC {claim} is defined")

    redis_url = config.get("redis", {}).get("url", "")
    m = re.fullmatch(r"redis://([^:/]+):(\d+)(/\d+)?", redis_url)
    if check(m is not None, f"redis.url {redis_url} names a host and port"):
        rsvc = objects.get(("Service", m.group(1)))
        check(rsvc is not None and any(p["port"] == int(m.group(2)) for p in rsvc["spec"]["ports"]),
              "redis.url points at the Redis Service's port")

    hpa = objects[("HorizontalPodAutoscaler", "talkserve")]
    ref = hpa["spec"]["scaleTargetRef"]
    check(ref["kind"] == "Deployment" and ref["name"] == "talkserve", "the HPA scales Deployment talkserve")
    hpa_metrics = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    check(len(hpa_metrics) >= 1, "the HPA scales on per-pod custom metrics")

    annotations = spec["template"]["metadata"].get("annotations", {})
    return {
        "probes": sorted(set(probes.values())),
        "hpa_metrics": hpa_metrics,
        "metrics_path": annotations.get("prometheus.io/path", "/metrics"),
        "metrics_port": int(annotations.get("prometheus.io/port", http_port)),
        "http_port": http_port,
    }


def adapter_rules(docs):
    """[(series name the rule selects, custom metric name it serves)]."""
    values = docs.get(os.path.join("prometheus-adapter", "values.yaml"), [{}])[0]
    out = []
    for rule in values.get("rules", {}).get("custom", []):
        m = re.match(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", rule["seriesQuery"])
        series = m.group(1) if m else None
        check(series is not None, f"adapter rule {rule['seriesQuery']} names a series")
        check("namespace" in rule["resources"]["overrides"] and "pod" in rule["resources"]["overrides"],
              f"adapter rule for {series} maps namespace and pod")
        check(re.fullmatch(rule["name"]["matches"], series or "") is not None,
              f"adapter rule for {series}: name.matches matches the series")
        out.append((series, rule["name"].get("as", series)))
    return out


def http_get(port, path, timeout=5):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def base_overrides(models_dir):
    # As the integration tests start it: loopback, a free port, the fetched tiny models, and
    # no demo page; only the LLM loads (its queue depth and waiting gauges are what the HPA
    # reads), which keeps start-up short.
    return ["--set", "http.host=127.0.0.1", "--set", "http.port=0",
            "--set", f'server.models_dir="{models_dir}"', "--set", 'http.static_dir=""',
            "--set", "llm.threads=1", "--set", "asr.enabled=false", "--set", "tts.enabled=false",
            "--set", "talk.enabled=false"]


def check_config_file(binary, models_dir):
    """talkserve.toml passes --check-config; the cluster-only paths are pointed at local ones."""
    with tempfile.TemporaryDirectory() as tmp:
        keys = os.path.join(tmp, "api-keys")
        with open(os.path.join(HERE, "api-keys.txt")) as src, open(keys, "w") as dst:
            dst.write(src.read())
        args = [binary, "--config", os.path.join(HERE, "talkserve.toml"),
                "--set", f'gateway.keys_file="{keys}"', "--check-config"]
        r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        if r.returncode != 0 and "redis.url" in r.stderr and "hiredis" in r.stderr:
            # A build without the Redis tier refuses any url; check the rest.
            r = subprocess.run(args[:-1] + ["--set", 'redis.url=""', "--check-config"],
                               capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, f"talkserve --check-config accepts talkserve.toml {r.stderr.strip()}")


def check_live(binary, models_dir, static):
    # The log (stderr) goes to a file: an unread pipe would fill up and block the server.
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([binary] + base_overrides(models_dir), stdout=subprocess.PIPE,
                            stderr=log, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"talkserve listening on [^:]+:(\d+)", line)
        if not check(m is not None, "talkserve started and printed its port"):
            proc.wait(timeout=30)
            log.seek(0)
            print(log.read())
            return
        port = int(m.group(1))
        deadline = time.monotonic() + 120
        status = 0
        while time.monotonic() < deadline and proc.poll() is None:
            status, _ = http_get(port, "/readyz")
            if status == 200:
                break
            time.sleep(0.05)
        if not check(status == 200, "talkserve became ready"):
            return
        for path in static["probes"]:
            status, body = http_get(port, path)
            check(status == 200, f"probe path {path} answers 200 ({body.strip()[:60]})")
        status, text = http_get(port, static["metrics_path"])
        check(status == 200, f"{static['metrics_path']} (prometheus.io/path) answers 200")
        check(static["metrics_port"] == static["http_port"], "prometheus.io/port is the HTTP port")
        series = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{|\s)", text, re.M))
        served = {}
        for name, served_as in adapter_rules(static["docs"]):
            check(name in series, f"/metrics has {name} (selected by an adapter rule)")
            served[served_as] = name
        for metric in static["hpa_metrics"]:
            check(metric in served, f"HPA metric {metric} is served by an adapter rule "
                                    f"(from {served.get(metric, '?')})")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        check(proc.returncode == 0, f"talkserve exited 0 on SIGTERM (status {proc.returncode})")
        if failures:
            log.seek(0)
            print("talkserve log (last 3000 characters):\n" + log.read()[-3000:])
        log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--talkserve", required=True, help="the talkserve binary")
    ap.add_argument("--models-dir", required=True, help="the fetched models (models/)")
    args = ap.parse_args()

    docs = load_yaml_files()
    with open(os.path.join(HERE, "talkserve.toml"), "rb") as fh:
        config = tomllib.load(fh)
    static = check_static(docs, config)
    check_config_file(args.talkserve, args.models_dir)
    if static is not None:
        static["docs"] = docs
        check_live(args.talkserve, args.models_dir, static)
    if failures:
        print(f"\n{len(failures)} check(s) failed:")
        for f in failures:
            print(f"  {f}")
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
