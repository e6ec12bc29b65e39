# A job script that probes what its sandbox can reach: its route and MCP
# toolset through the broker, a route and a tool it was not granted, and
# every place a secret could hide. It writes what it saw to result.json.
import json, os, urllib.error, urllib.request

BROKER = os.environ["KEYHOLE_BROKER_URL"]
ARGS = json.load(open("/work/args.json"))
# The canary comes reversed, so that the sandbox is given no copy of it.
CANARY = ARGS["canary_reversed"][::-1]


def http(url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def mcp(method, params, session=None, ident=1):
    headers = {"Content-Type": "application/json",
               "Accept": "application/json, text/event-stream"}
    if session:
        headers["Mcp-Session-Id"] = session
    body = {"jsonrpc": "2.0", "method": method, "params": params}
    if ident is not None:
        body["id"] = ident
    status, hdrs, text = http(BROKER + "/mcp", json.dumps(body).encode(), headers)
    session = session or hdrs.get("Mcp-Session-Id") or hdrs.get("mcp-session-id")
    msgs = [json.loads(l[5:]) for l in text.splitlines() if l.startswith("data:")]
    if not msgs and text.strip().startswith("{"):
        msgs = [json.loads(text)]
    return status, session, msgs


def search(root, limit=4000):
    """Paths under root whose content holds the canary."""
    hits, seen = [], 0
    for dirpath, dirnames, filenames in os.walk(root):
        for f in filenames:
            p = os.path.join(dirpath, f)
            seen += 1
            if seen > limit:
                return hits
            try:
                with open(p, "rb") as fh:
                    if CANARY.encode() in fh.read(1 << 20):
                        hits.append(p)
            except OSError:
                pass
    return hits


out = {}
status, _, body = http(BROKER + "/routes/stripe/v1/customers/search?query=" +
                       urllib.request.quote("email:'billing@acme.example'"))
out["route"] = {"status": status, "acme": "cus_Acme0001" in body}
status, _, _ = http(BROKER + "/routes/other/v1/anything")
out["ungranted_route"] = status

status, session, msgs = mcp("initialize", {"protocolVersion": "2025-06-18",
                                           "capabilities": {},
                                           "clientInfo": {"name": "probe", "version": "1"}})
mcp("notifications/initialized", {}, session, ident=None)
_, _, msgs = mcp("tools/list", {}, session, 2)
out["tools"] = sorted(t["name"] for t in msgs[0]["result"]["tools"])
_, _, msgs = mcp("tools/call", {"name": "get_customer",
                                "arguments": {"email": "billing@acme.example"}}, session, 3)
res = msgs[0]["result"]
out["tool_call"] = {"is_error": res.get("isError", False),
                    "acme": "cus_Acme0001" in res["content"][0]["text"]}
_, _, msgs = mcp("tools/call", {"name": "admin_tool", "arguments": {}}, session, 4)
out["ungranted_tool"] = "error" in msgs[0] or msgs[0].get("result", {}).get("isError", False)

env = "\n".join(f"{k}={v}" for k, v in os.environ.items())
out["env_has_canary"] = CANARY in env
out["files_with_canary"] = search("/work") + search("/tmp") + search("/etc")
proc = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        for name in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as fh:
                    if CANARY.encode() in fh.read():
                        proc.append(f"/proc/{pid}/{name}")
            except OSError:
                pass
out["proc_with_canary"] = proc
out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
json.dump(out, open("/work/result.json", "w"))
