"""Walks a Scope-compatible HTTP API as Weave Scope's UI and scripts do, and checks every
response's shape against Weave Scope 1.13's recorded responses in this directory.

Usage: walk.py BASE_URL [TOKEN]. Prints one JSON object: what was fetched and any mismatch.
Exits 1 when a response does not have the recorded shape.

Shape: for each JSON object, every key that Scope sent in *every* recorded object of the same
kind must be present, and every key both sent must have the same JSON type (number, string,
bool, list, object; null matches anything, as Scope's nulls are empty lists). Keys Scope leaves
out when empty (omitempty) are optional because some recorded object lacks them.
"""

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = sys.argv[1].rstrip("/")
TOKEN = sys.argv[2] if len(sys.argv) > 2 else None
problems = []
fetched = []


def get(path):
    request = urllib.request.Request(BASE + path)
    if TOKEN:
        request.add_header("Authorization", "Bearer " + TOKEN)
    with urllib.request.urlopen(request, timeout=30) as response:
        fetched.append(path)
        return json.load(response)


def recorded(name):
    with open(os.path.join(HERE, name)) as f:
        return json.load(f)


def kind(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def merge(samples):
    """The shape of a list of recorded values of one kind: for objects, the keys every one has
    and, per key, the merged shape of its values."""
    samples = [s for s in samples if s is not None]
    if not samples:
        return None
    kinds = {kind(s) for s in samples}
    if len(kinds) > 1:
        return {"kind": "any"}
    k = kinds.pop()
    if k == "object":
        keys = set(samples[0])
        for s in samples[1:]:
            keys &= set(s)
        every = sorted(keys)
        fields = {}
        for s in samples:
            for key, value in s.items():
                fields.setdefault(key, []).append(value)
        return {"kind": k, "required": every, "fields": {key: merge(v) for key, v in fields.items()}}
    if k == "list":
        return {"kind": k, "items": merge([item for s in samples for item in s])}
    return {"kind": k}


# Scope's omitempty fields (`json:",omitempty"` in its render/detailed): absent when empty,
# whatever the recorded node had, so a node without metrics yet has no `metrics`.
OMITEMPTY = {"adjacency", "pseudo", "metadata", "parents", "metrics", "children", "tables"}


def check(ours, shape, where):
    if shape is None or ours is None or shape.get("kind") == "any":
        return
    if kind(ours) != shape["kind"]:
        problems.append(f"{where}: {kind(ours)} where Scope has {shape['kind']}")
        return
    if shape["kind"] == "object":
        for key in shape["required"]:
            if key not in ours and key not in OMITEMPTY:
                problems.append(f"{where}: no {key!r}")
        for key, value in ours.items():
            if key in shape["fields"]:
                check(value, shape["fields"][key], f"{where}.{key}")
    elif shape["kind"] == "list":
        for i, item in enumerate(ours[:50]):
            check(item, shape["items"], f"{where}[{i}]")


def nodes_of(response):
    return list(response["nodes"].values())


api = get("/api")
check(api, merge([recorded("api.json")]), "/api")
check(get("/api/probes"), merge([recorded("api_probes.json")]), "/api/probes")

topologies = get("/api/topology")
recorded_topologies = recorded("api_topology.json")
all_recorded = recorded_topologies + [s for t in recorded_topologies for s in t.get("sub_topologies") or []]
check(topologies, {"kind": "list", "items": merge(all_recorded)}, "/api/topology")

summary_shape = merge(
    nodes_of(recorded("api_topology_processes.json"))
    + nodes_of(recorded("api_topology_hosts.json"))
)
# A node's details as recorded for its view; a view or node Scope recorded none of (a pseudo
# node, processes-by-name) only needs what every node has.
recorded_details = {
    "/api/topology/processes": merge([recorded("api_topology_processes_node_httpserver.json")["node"]]),
    "/api/topology/hosts": merge([recorded("api_topology_hosts_node.json")["node"]]),
}
BASIC = ["id", "label", "labelMinor", "rank", "shape", "connections", "controls"]


def details_shape(url, node):
    merged = merge([recorded(n)["node"] for n in ("api_topology_processes_node_httpserver.json", "api_topology_hosts_node.json")])
    shape = recorded_details.get(url, merged)
    if url not in recorded_details or node.get("pseudo"):
        shape = dict(shape, required=[k for k in shape["required"] if k in BASIC])
    return shape

views = []
for t in topologies:
    views.append(t)
    views.extend(t.get("sub_topologies") or [])
walked = {}
for t in views:
    for query in ("", "?system=show"):
        listing = get(t["url"] + query)
        check(listing, {"kind": "object", "required": ["nodes"], "fields": {}}, t["url"] + query)
        for node_id, node in listing["nodes"].items():
            check(node, summary_shape, f"{t['url']}{query} {node_id}")
            if node["id"] != node_id:
                problems.append(f"{t['url']}: node keyed {node_id} has id {node['id']}")
    listing = get(t["url"])
    walked[t["url"]] = sorted(listing["nodes"])
    for node_id in listing["nodes"]:
        try:
            details = get(t["url"] + "/" + urllib.parse.quote(node_id, safe=""))
        except urllib.error.HTTPError as e:
            # A snapshot rendered since the listing may have let the node go (a process that
            # exited): a 404 is right then, and wrong only for a node still listed.
            if e.code == 404 and node_id not in get(t["url"])["nodes"]:
                continue
            raise
        check(details["node"], details_shape(t["url"], details["node"]), f"{t['url']}/{node_id}")

# The report, as Scope's tooling reads it (`.Process.nodes`): each topology's nodes keyed by
# their ids, shaped as the recorded report's nodes of that topology.
report = get("/api/report")
recorded_report = recorded("api_report.json")
reported = {}
for key in ("Endpoint", "Process", "Host"):
    if key not in report:
        problems.append(f"/api/report: no {key!r}")
        continue
    shape = merge(list(recorded_report[key]["nodes"].values()))
    # Which keys a node's `latest`, `sets` and `metrics` have is up to its reporter (Scope's
    # probe had controls; a process seen once has no CPU rate yet): their types are checked.
    for field in ("latest", "sets", "metrics"):
        if (shape["fields"].get(field) or {}).get("kind") == "object":
            shape["fields"][field]["required"] = []
    reported[key] = sorted(report[key]["nodes"])
    for node_id, node in list(report[key]["nodes"].items())[:50]:
        check(node, shape, f"/api/report {key} {node_id}")
        if node.get("id") != node_id:
            problems.append(f"/api/report {key}: node keyed {node_id} has id {node.get('id')}")
check(report, {"kind": "object", "required": ["TS"], "fields": {}}, "/api/report")

print(json.dumps({"problems": problems, "fetched": len(fetched), "views": walked, "report": reported}))
sys.exit(1 if problems else 0)
