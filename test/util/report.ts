import tape from "tape";

/**
 * Routes tape's results through one reporter: failures in full, passes as a
 * count, and the closing line `N passed, N failed` that CI reads. With
 * LOWBIT_SUMMARY_FILE set it also writes {passed, failed} as JSON there
 * (scripts/run-tests.mjs adds the two backends' runs together). With
 * LOWBIT_TEST_TIMES=1 it prints each test's wall time (ms) as it ends, to find
 * the slow ones (`… | sort -n`).
 */
function report(): void {
  let passed = 0;
  let failed = 0;
  let current = "";
  const verbose = process.env.LOWBIT_TEST_VERBOSE === "1";
  const times = process.env.LOWBIT_TEST_TIMES === "1";
  const started = new Map<number, [string, number]>();
  const stream = tape.createStream({ objectMode: true });
  stream.on("data", (row: { type: string; id?: number; test?: number; name?: string; ok?: boolean; operator?: string; actual?: unknown; expected?: unknown; error?: unknown; at?: string }) => {
    if (row.type === "test") {
      current = row.name ?? "";
      if (times) started.set(row.id ?? -1, [current, performance.now()]);
    }
    if (times && row.type === "end") {
      const s = started.get(row.test ?? -1);
      if (s) console.log(`time ${(performance.now() - s[1]).toFixed(0).padStart(7)} ms  ${s[0]}`);
    }
    if (row.type !== "assert") return;
    if (row.ok) {
      passed++;
      if (verbose) console.log(`ok ${current} — ${row.name}`);
      return;
    }
    failed++;
    console.log(`not ok ${failed}: ${current} — ${row.name}`);
    console.log(`  operator: ${row.operator}`);
    if (row.error) console.log(`  error: ${String((row.error as Error).stack ?? row.error)}`);
    else {
      console.log(`  expected: ${fmt(row.expected)}`);
      console.log(`  actual:   ${fmt(row.actual)}`);
    }
    if (row.at) console.log(`  at: ${row.at}`);
  });
  stream.on("end", async () => {
    const file = process.env.LOWBIT_SUMMARY_FILE;
    if (file) {
      const { writeFileSync } = await import("node:fs");
      writeFileSync(file, JSON.stringify({ passed, failed }));
    }
    console.log(`${passed} passed, ${failed} failed`);
    process.exitCode = failed > 0 ? 1 : 0;
  });
}

function fmt(v: unknown): string {
  try {
    const s = typeof v === "string" ? v : JSON.stringify(v);
    return s && s.length > 400 ? s.slice(0, 400) + "…" : String(s);
  } catch {
    return String(v);
  }
}
report();
