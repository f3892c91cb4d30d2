import tape from "tape";

/**
 * Routes tape's results through one reporter: failures in full, passes as a
 * count, and the closing line `N passed, N failed` that CI reads. With
 * LOWBIT_SUMMARY_FILE set it also writes {passed, failed} as JSON there
 * (scripts/run-tests.mjs adds the two backends' runs together).
 */
function report(): void {
  let passed = 0;
  let failed = 0;
  let current = "";
  const verbose = process.env.LOWBIT_TEST_VERBOSE === "1";
  const stream = tape.createStream({ objectMode: true });
  stream.on("data", (row: { type: string; name?: string; ok?: boolean; operator?: string; actual?: unknown; expected?: unknown; error?: unknown; at?: string }) => {
    if (row.type === "test") current = row.name ?? "";
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
