import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { LowbitError, checkInt } from "../runtime/errors.ts";
import { readImage, readImageHeader, type ReadImageOptions } from "../io/image.ts";
import type { ImageU8 } from "./color.ts";

/**
 * An SR evaluation set on disk (Node only): `<dir>/hr/NAME.png` and `<dir>/lr_x<S>/NAME.png`
 * (PNG or JPEG, matched by file name without extension), HR size = S × LR size exactly —
 * the layout of `shared/data/eval` (protocol.md §1) and of the usual Set5/Set14 packs.
 */

export interface EvalPair {
  /** File name without extension, e.g. "baboon". */
  name: string;
  /** Absolute or dir-relative paths of the two files. */
  hr: string;
  lr: string;
  scale: number;
  /** HR size (LR is width/scale × height/scale). */
  width: number;
  height: number;
}

const IMAGE_EXT = /\.(png|jpe?g)$/i;

function dirPath(dir: string | URL): string {
  return dir instanceof URL ? fileURLToPath(dir) : dir;
}

async function listImages(dir: string, what: string): Promise<Map<string, string>> {
  let entries: string[];
  try {
    if (!(await stat(dir)).isDirectory()) throw new Error("not a directory");
    entries = await readdir(dir);
  } catch (e) {
    throw new LowbitError("E_IO", `eval set: cannot list ${what} directory ${dir}: ${(e as Error).message}`, { cause: e });
  }
  const byName = new Map<string, string>();
  for (const f of entries) {
    if (!IMAGE_EXT.test(f)) continue;
    const name = f.replace(IMAGE_EXT, "");
    const prev = byName.get(name);
    if (prev !== undefined) throw new LowbitError("E_ARGUMENT", `eval set: ${what} has both ${prev} and ${f}`);
    byName.set(name, f);
  }
  return byName;
}

/** The scales S for which `<dir>/lr_x<S>/` exists, ascending. */
export async function evalScales(dir: string | URL): Promise<number[]> {
  const root = dirPath(dir);
  let entries: string[];
  try {
    entries = await readdir(root);
  } catch (e) {
    throw new LowbitError("E_IO", `eval set: cannot list ${root}: ${(e as Error).message}`, { cause: e });
  }
  return entries
    .map((e) => /^lr_x(\d+)$/.exec(e))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

async function header(path: string): Promise<{ width: number; height: number }> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new LowbitError("E_IO", `eval set: cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return readImageHeader(bytes);
  } catch (e) {
    if (e instanceof LowbitError) throw new LowbitError(e.code, `eval set: ${path}: ${e.message.replace(/^E_\w+: /, "")}`, { cause: e });
    throw e;
  }
}

/**
 * Lists the (HR, LR×scale) pairs of an eval directory, sorted by name (code-point order, so
 * the order — and any mean over it — is the same on every machine). Every HR image needs its LR
 * and vice versa (E_IO names the missing file), and HR must be exactly scale × LR (E_SHAPE).
 * Sizes come from the file headers; pixels are not decoded here.
 */
export async function listEvalSet(dir: string | URL, scale: number): Promise<EvalPair[]> {
  checkInt(scale, 1, 64, "scale");
  const root = dirPath(dir);
  const hrDir = join(root, "hr");
  const lrDir = join(root, `lr_x${scale}`);
  const hr = await listImages(hrDir, "hr");
  const lr = await listImages(lrDir, `lr_x${scale}`);
  if (hr.size === 0) throw new LowbitError("E_IO", `eval set: no PNG/JPEG images in ${hrDir}`);
  for (const name of lr.keys()) {
    if (!hr.has(name)) throw new LowbitError("E_IO", `eval set: ${join(lrDir, lr.get(name)!)} has no HR counterpart in ${hrDir}`);
  }
  const names = [...hr.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const pairs: EvalPair[] = [];
  for (const name of names) {
    const lrFile = lr.get(name);
    if (lrFile === undefined) {
      throw new LowbitError("E_IO", `eval set: ${join(hrDir, hr.get(name)!)} has no LR counterpart in ${lrDir}`);
    }
    const hp = join(hrDir, hr.get(name)!);
    const lp = join(lrDir, lrFile);
    const [h, l] = await Promise.all([header(hp), header(lp)]);
    if (l.width * scale !== h.width || l.height * scale !== h.height) {
      throw new LowbitError(
        "E_SHAPE",
        `eval set: ${name}: HR ${h.width}×${h.height} is not ${scale}× LR ${l.width}×${l.height}` +
          (h.width % scale || h.height % scale ? ` (HR sides must be multiples of ${scale}; crop HR first)` : ""),
      );
    }
    pairs.push({ name, hr: hp, lr: lp, scale, width: h.width, height: h.height });
  }
  return pairs;
}

/** Decodes both images of a pair (RGB unless the files carry alpha), re-checking the sizes. */
export async function loadEvalPair(
  pair: EvalPair,
  opts: ReadImageOptions = {},
): Promise<{ name: string; scale: number; hr: ImageU8; lr: ImageU8 }> {
  const [hr, lr] = await Promise.all([readImage(pair.hr, opts), readImage(pair.lr, opts)]);
  if (lr.width * pair.scale !== hr.width || lr.height * pair.scale !== hr.height) {
    throw new LowbitError("E_SHAPE", `eval set: ${pair.name}: HR ${hr.width}×${hr.height} is not ${pair.scale}× LR ${lr.width}×${lr.height}`);
  }
  return { name: pair.name, scale: pair.scale, hr, lr };
}
