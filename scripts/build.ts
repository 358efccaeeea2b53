/**
 * `npm run build`: the package as production runs it, in `dist/`.
 *
 *   dist/<folder>/**.js (+ .d.ts, source maps)  tsc -p tsconfig.build.json
 *   dist/adapters/{mysql,sqlite}/migrations/     the SQL migrations, copied
 *   dist/server/ui/page/                         the visualizer's page and stylesheet
 *   dist/server/ui/bundle/app.js(.map)           the visualizer's script, bundled by esbuild
 *
 * The built code finds each of these beside itself (`import.meta.url`), so
 * `node dist/cli/main.js start` needs neither tsx nor esbuild.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUNDLE_FILES, bundleClient } from '../server/ui/assets.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');

/** Non-TypeScript files the built code reads at run time, by folder. */
const RUNTIME_FILES = ['adapters/mysql/migrations', 'adapters/sqlite/migrations', 'server/ui/page'] as const;

async function main(): Promise<void> {
  rmSync(dist, { recursive: true, force: true });
  const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], {
    stdio: 'inherit',
  });
  if (tsc.status !== 0) throw new Error(`tsc exited with ${tsc.status ?? tsc.signal}`);
  for (const folder of RUNTIME_FILES) cpSync(join(root, folder), join(dist, folder), { recursive: true });
  const bundle = await bundleClient({ minify: true });
  const out = join(dist, 'server/ui/bundle');
  mkdirSync(out, { recursive: true });
  for (const name of BUNDLE_FILES) {
    const file = bundle.get(name);
    if (!file) throw new Error(`the UI bundle has no ${name}`);
    writeFileSync(join(out, name), file.body);
  }
  console.log(`build: dist/ written (${RUNTIME_FILES.length} runtime folders copied, UI bundle ${bundle.get('app.js')?.body.length} bytes)`);
}

await main();
