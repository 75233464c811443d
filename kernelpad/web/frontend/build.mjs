// Bundles the browser UI with esbuild into ../static/dist: every file name carries a hash of
// its content, and manifest.json maps each entry ("pad.js", "pad.css") to its file, for the
// pages Tornado serves. `node build.mjs` (run by make when a source changes).
import * as esbuild from "esbuild";
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.join(here, "..", "static", "dist");

await mkdir(outdir, { recursive: true });
const result = await esbuild.build({
  entryPoints: {
    home: path.join(here, "src", "home.js"),
    pad: path.join(here, "src", "pad.js"),
    replay: path.join(here, "src", "replay.js"),
  },
  bundle: true,
  format: "esm",
  splitting: true,
  minify: true,
  sourcemap: "linked",
  target: ["es2022"],
  outdir,
  entryNames: "[name]-[hash]",
  chunkNames: "chunk-[hash]",
  assetNames: "[name]-[hash]",
  metafile: true,
  legalComments: "linked",
  logLevel: "warning",
});

const manifest = {};
for (const [file, output] of Object.entries(result.metafile.outputs)) {
  if (!output.entryPoint) continue;
  const name = path.basename(output.entryPoint, ".js");
  manifest[`${name}.js`] = path.basename(file);
  if (output.cssBundle) manifest[`${name}.css`] = path.basename(output.cssBundle);
}
await writeFile(path.join(outdir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
// The old bundle stays until the new one is named, so no page loaded meanwhile misses a file.
const current = new Set([...Object.keys(result.metafile.outputs).map((file) => path.basename(file)), "manifest.json"]);
for (const file of await readdir(outdir)) {
  if (!current.has(file)) await rm(path.join(outdir, file));
}
console.log(`bundled ${current.size - 1} files into ${path.relative(process.cwd(), outdir)}`);
