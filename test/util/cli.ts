// Helpers of the CLI tests: an io whose streams collect text, and a temp folder of PNG images.
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodePng } from "../../src/io/image.ts";
import type { ImageLike } from "../../src/engine/image.ts";

export interface TextSink {
  write(x: string): boolean;
  readonly text: string;
}

function sink(): TextSink {
  let s = "";
  return { write: (x: string) => { s += x; return true; }, get text() { return s; } };
}

/** A CliIO for `run()` (src/cli/main.ts) with collecting stdout/stderr and an empty environment. */
export function cliIo(): { stdout: TextSink; stderr: TextSink; env: Record<string, string | undefined> } {
  return { stdout: sink(), stderr: sink(), env: {} };
}

/** A fresh temp folder `<prefix>…/` with `images` written as `sub/p<i>.png`; returns both paths. */
export function pngFolder(prefix: string, sub: string, images: readonly ImageLike[]): { root: string; dir: string } {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const dir = join(root, sub);
  mkdirSync(dir);
  images.forEach((im, i) => writeFileSync(join(dir, `p${i}.png`), encodePng({ data: Uint8Array.from(im.data), width: im.width, height: im.height, channels: 3 })));
  return { root, dir };
}
