// A tiny static server for the demo and the browser tests (node:http, no dependency). Routes:
//   /                         examples/web/dist (the page, app.js, worker.js, samples)
//   /models/                  examples/web/models (.lowbit files)
//   /node_modules/@upscalerjs/ the TF.js model packages (FP32 models, loaded by short name + modelBaseUrl)
//   /dist/, /build/           the compiled library and the raw .wasm builds (plain-ESM and init({url}) tests)
//   extra mounts given by the caller (the test's bundled apps)
// Only GET/HEAD, paths resolved inside their mount (no `..` escapes), no directory listings.
import { createServer, type Server } from "node:http";
import { createReadStream, statSync } from "node:fs";
import { dirname, extname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
  ".json": "application/json", ".wasm": "application/wasm", ".png": "image/png", ".jpg": "image/jpeg", ".bin": "application/octet-stream",
  ".lowbit": "application/octet-stream", ".css": "text/css",
};

export function defaultMounts(): Record<string, string> {
  return {
    "/models/": join(here, "models"),
    "/node_modules/@upscalerjs/": join(root, "node_modules", "@upscalerjs"),
    "/dist/": join(root, "dist"),
    "/build/": join(root, "build"),
    "/": join(here, "dist"),
  };
}

/** Starts the server on 127.0.0.1 (port 0 = any free port); resolves with it and its base URL. */
export function serve(port = 0, extra: Record<string, string> = {}): Promise<{ server: Server; url: string }> {
  const mounts = Object.entries({ ...extra, ...defaultMounts() }).sort((a, b) => b[0].length - a[0].length);
  const server = createServer((req, res) => {
    const fail = (code: number) => {
      res.writeHead(code, { "content-type": "text/plain" });
      res.end(String(code));
    };
    if (req.method !== "GET" && req.method !== "HEAD") return fail(405);
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    } catch {
      return fail(400);
    }
    if (path.endsWith("/")) path += "index.html";
    const m = mounts.find(([prefix]) => path.startsWith(prefix));
    if (!m) return fail(404);
    const base = resolve(m[1]);
    const file = resolve(base, "." + path.slice(m[0].length - 1));
    if (file !== base && !file.startsWith(base + sep)) return fail(403);
    let size: number;
    try {
      const st = statSync(file);
      if (!st.isFile()) return fail(404);
      size = st.size;
    } catch {
      return fail(404);
    }
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "content-length": size, "cache-control": "no-store" });
    if (req.method === "HEAD") return res.end();
    createReadStream(file).pipe(res);
  });
  return new Promise((ok) => server.listen(port, "127.0.0.1", () => {
    const a = server.address();
    ok({ server, url: `http://127.0.0.1:${typeof a === "object" && a ? a.port : port}/` });
  }));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { url } = await serve(Number(process.env.PORT ?? 8080));
  console.log(`lowbit demo: ${url}`);
}
