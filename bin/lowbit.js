#!/usr/bin/env node
// The `lowbit` command: runs the compiled CLI (dist/src/cli/main.js, produced by `npm run build`).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const entry = new URL("../dist/src/cli/main.js", import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  const root = fileURLToPath(new URL("..", import.meta.url));
  process.stderr.write(
    `lowbit: the CLI is not built (${fileURLToPath(entry)} is missing).\n` +
      `Run \`npm run build\` in ${root} first.\n`,
  );
  process.exit(1);
}
const { main } = await import(entry.href);
await main(process.argv.slice(2));
