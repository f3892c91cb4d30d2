// Builds lowbit's calibration set: OpenCV sample photos that are NOT in the eval
// set (../shared/data/eval), from the same Debian package (opencv-doc), with the
// eval set's crop rule and MATLAB-bicubic LR (protocol.md). Never calibrate on
// eval images (protocol.md §7.4).
//
//   npm run calib-data            → data/calib/{hr,lr_x2,lr_x3,lr_x4}/*.png
//
// Needs `apt-get download` (Debian) or LOWBIT_OPENCV_DEB=/path/to/opencv-doc_*.deb.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { decodeImage, writePng } from "../src/io/image.ts";
import { bicubicDown } from "../src/metrics/bicubic.ts";

/** Natural photos of opencv-doc 4.6.0 disjoint from the eval set's eight. */
const PHOTOS = [
  "aero3.jpg", "aloeL.jpg", "apple.jpg", "HappyFish.jpg", "leuvenA.jpg", "orange.jpg",
  "graf1.png", "squirrel_cls.jpg", "stuff.jpg", "smarties.png", "rubberwhale1.png", "starry_night.jpg",
];
const out = resolve(process.argv[2] ?? "data/calib");
const cache = join(homedir(), ".cache", "lowbit");
mkdirSync(cache, { recursive: true });
let deb = process.env.LOWBIT_OPENCV_DEB ?? readdirSync(cache).map((f) => join(cache, f)).find((f) => /opencv-doc_.*\.deb$/.test(f));
if (!deb) {
  console.log("downloading opencv-doc (Debian) into", cache);
  try {
    execFileSync("apt-get", ["download", "opencv-doc"], { cwd: cache, stdio: "inherit" });
  } catch (e) {
    // A fresh container may have empty package lists: refresh them once (needs root), then retry.
    if (process.getuid?.() !== 0) throw e;
    execFileSync("apt-get", ["update", "-q"], { stdio: "inherit" });
    execFileSync("apt-get", ["download", "opencv-doc"], { cwd: cache, stdio: "inherit" });
  }
  deb = readdirSync(cache).map((f) => join(cache, f)).find((f) => /opencv-doc_.*\.deb$/.test(f));
}
if (!deb || !existsSync(deb)) throw new Error("opencv-doc .deb not found; set LOWBIT_OPENCV_DEB");
const tmp = mkdtempSync(join(tmpdir(), "lowbit-ocv-"));
execFileSync("dpkg-deb", ["-x", deb, tmp]);
const src = join(tmp, "usr/share/doc/opencv-doc/examples/data");
for (const d of ["hr", "lr_x2", "lr_x3", "lr_x4"]) mkdirSync(join(out, d), { recursive: true });
for (const f of PHOTOS) {
  const img = decodeImage(readFileSync(join(src, f)), { channels: 3 });
  // eval crop rule: centre-crop sides > 480 to 480, then top-left crop to multiples of 24
  const cw = Math.min(img.width, 480), ch = Math.min(img.height, 480);
  const x0 = Math.floor((img.width - cw) / 2), y0 = Math.floor((img.height - ch) / 2);
  const w = cw - (cw % 24), h = ch - (ch % 24);
  const C = img.channels;
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) {
    data[(y * w + x) * 3 + c] = img.data[((y0 + y) * img.width + x0 + x) * C + (C >= 3 ? c : 0)];
  }
  const hr = { data, width: w, height: h, channels: 3 };
  const name = f.replace(/\.(jpg|png)$/, ".png");
  await writePng(join(out, "hr", name), hr as never);
  for (const s of [2, 3, 4]) await writePng(join(out, `lr_x${s}`, name), bicubicDown(hr, s) as never);
  console.log(`${name}: ${w}×${h}`);
}
rmSync(tmp, { recursive: true, force: true });
console.log(`calibration set written to ${out} (${PHOTOS.length} images)`);
