// A job that runs the sandboxed-agent example (node /app/agent.mjs) in its
// own sandbox and, while the agent and its Claude Code process run and after
// they end, looks everywhere a key could hide: its environment, every
// process's /proc environ and cmdline, and every file it can read.
//
// It is given no copy of the keys: /work/args.json holds, for each form of
// each key, a public prefix, the length and a SHA-256. A match is a window
// of that length starting with the prefix whose hash is the same.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, lstatSync, openSync, readFileSync, readSync, readdirSync,
  writeFileSync } from "node:fs";

const args = JSON.parse(readFileSync("/work/args.json", "utf8"));
const needles = args.needles.map((n) => ({ ...n, prefix: Buffer.from(n.prefix) }));
const maxLength = Math.max(...needles.map((n) => n.length));

// hits returns the names of the needles found in buf.
function hits(buf) {
  const found = [];
  for (const n of needles) {
    for (let i = buf.indexOf(n.prefix); i >= 0; i = buf.indexOf(n.prefix, i + 1)) {
      if (i + n.length > buf.length) {
        break;
      }
      const sum = createHash("sha256").update(buf.subarray(i, i + n.length)).digest("hex");
      if (sum === n.sha256) {
        found.push(n.name);
        break;
      }
    }
  }
  return found;
}

// searchFile streams a file through hits, keeping an overlap between chunks.
function searchFile(path) {
  const fd = openSync(path, "r");
  try {
    const chunk = Buffer.alloc(1 << 20);
    let carry = Buffer.alloc(0);
    const found = new Set();
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) {
        return [...found];
      }
      const buf = Buffer.concat([carry, chunk.subarray(0, n)]);
      hits(buf).forEach((h) => found.add(h));
      carry = Buffer.from(buf.subarray(Math.max(0, buf.length - maxLength + 1)));
    }
  } finally {
    closeSync(fd);
  }
}

const leaks = new Set();
const environsRead = new Set(); // command lines of the processes whose environ was read
let procReads = 0;

// scanProc reads every process's command line and environment.
function scanProc() {
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    let command = "";
    for (const name of ["cmdline", "environ"]) {
      let data;
      try {
        data = readFileSync(`/proc/${pid}/${name}`);
      } catch {
        continue; // gone, or closed to us (the sandbox's init)
      }
      procReads++;
      if (name === "cmdline") {
        command = data.toString().split("\0").slice(0, 2).join(" ").slice(0, 200);
      } else {
        environsRead.add(command);
      }
      for (const h of hits(data)) {
        leaks.add(`${h} in /proc/${pid}/${name}`);
      }
    }
  }
}

// System folders bound read-only from the host: a file there older than the
// keys cannot hold them, so only its metadata is read.
const systemDirs = ["/usr/", "/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/"];
const skipDirs = new Set(["/proc", "/sys", "/dev"]);
const files = { searched: 0, bytes: 0, older_system_files: 0, unreadable: 0 };

function walk(dir) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    files.unreadable++;
    return;
  }
  for (const e of entries) {
    const path = dir === "/" ? `/${e.name}` : `${dir}/${e.name}`;
    if (e.isDirectory() && !skipDirs.has(path)) {
      walk(path);
    } else if (e.isFile()) {
      searchOne(path);
    }
  }
}

function searchOne(path) {
  try {
    const st = lstatSync(path);
    if (systemDirs.some((d) => path.startsWith(d)) && st.mtimeMs < args.keys_created_ms) {
      files.older_system_files++;
      return;
    }
    for (const h of searchFile(path)) {
      leaks.add(`${h} in ${path}`);
    }
    files.searched++;
    files.bytes += st.size;
  } catch {
    files.unreadable++;
  }
}

// Run the agent, watching /proc while it runs.
const agent = spawn("node", ["/app/agent.mjs"], { stdio: ["ignore", "inherit", "inherit"] });
const exited = new Promise((resolve) => agent.on("exit", (code) => resolve(code)));
let running = true;
exited.then(() => { running = false; });
while (running) {
  scanProc();
  await new Promise((resolve) => setTimeout(resolve, 20));
}
const agentExit = await exited;
let agentResult = null;
try {
  agentResult = JSON.parse(readFileSync("/work/result.json", "utf8"));
} catch {
  // the agent wrote none; agentExit says why
}

// Then everything it could have left behind.
scanProc();
for (const h of hits(Buffer.from(JSON.stringify(process.env)))) {
  leaks.add(`${h} in the environment`);
}
walk("/");

writeFileSync("/work/result.json", JSON.stringify({
  agent_exit: agentExit,
  agent_result: agentResult,
  leaks: [...leaks].sort(),
  proc_reads: procReads,
  environs_read: [...environsRead].sort(),
  files,
}));
