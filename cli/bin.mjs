#!/usr/bin/env node
// The `ats` executable. In a checkout (the TypeScript sources beside this file,
// and tsx installed with the dev dependencies) it runs the sources through
// tsx, so an edit needs no build; in an installed package or the Docker image
// it runs the JavaScript that `npm run build` wrote to dist/. Run from sources,
// the package's own entries (`ai-task-scheduler/handlers`, `/client`, which
// handler modules import) resolve to the sources too: the `ats-source` export
// condition, as `npm start` sets it with --conditions=ats-source.
import { existsSync } from 'node:fs';
import { createRequire, register as registerHooks } from 'node:module';

const source = new URL('./main.ts', import.meta.url);
const built = new URL('../dist/cli/main.js', import.meta.url);

function hasTsx() {
  try {
    createRequire(import.meta.url).resolve('tsx/esm/api');
    return true;
  } catch {
    return false;
  }
}

const SOURCE_CONDITION =
  'export async function resolve(specifier, context, next) {' +
  " return next(specifier, { ...context, conditions: [...context.conditions, 'ats-source'] }); }";

if (existsSync(source) && hasTsx()) {
  registerHooks(`data:text/javascript,${encodeURIComponent(SOURCE_CONDITION)}`);
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else if (existsSync(built)) {
  await import(built.href);
} else {
  process.stderr.write('ats: no built code: run `npm run build` (or install the dev dependencies to run the sources)\n');
  process.exit(1);
}
