/**
 * The visualizer's assets, built by the project itself (no CDN): the page and
 * its stylesheet are read from `page/`. The script is `bundle/app.js` when
 * `npm run build` made it (the built package, `dist/`); run from sources, it is
 * bundled from `client/main.ts` (with dagre) by esbuild's JS API on first
 * request, then kept in memory. esbuild and dagre are build-time dependencies:
 * a production install (`npm ci --omit=dev`) has neither.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One asset as served. */
export interface Asset {
  body: Buffer;
  contentType: string;
  /** A strong ETag of the body, quoted. */
  etag: string;
}

export interface UiAssets {
  /** The page (index.html). */
  page(): Promise<Asset>;
  /** An asset under /ui/assets/ by file name (`app.js`, `app.js.map`, `app.css`), or undefined. */
  get(name: string): Promise<Asset | undefined>;
}

export interface UiAssetOptions {
  /** Minify the bundle (a source map is served beside it either way). @defaultValue true */
  minify?: boolean;
}

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
export const CLIENT_ENTRY = here('./client/main.ts');
const PAGE_FILE = here('./page/index.html');
const CSS_FILE = here('./page/styles.css');
/** Where `npm run build` writes the bundle, beside the built `assets.js`. */
export const BUNDLE_DIR = here('./bundle/');
/** The bundle's files, by the names they are served under. */
export const BUNDLE_FILES = ['app.js', 'app.js.map'] as const;

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

function asset(name: string, body: Buffer | Uint8Array): Asset {
  const bytes = Buffer.from(body);
  const ext = name.slice(name.lastIndexOf('.'));
  const etag = `"${createHash('sha256').update(bytes).digest('base64url').slice(0, 22)}"`;
  return { body: bytes, contentType: TYPES[ext] ?? 'application/octet-stream', etag };
}

/**
 * Whether an If-None-Match field matches an asset's ETag, so the answer is a
 * 304: `*`, or a list of entity tags one of which has the same opaque tag, by
 * the weak comparison RFC 9110 prescribes for this field (`W/"x"` matches
 * `"x"`: a compressing proxy weakens the tag it passes on). A field that does
 * not parse matches nothing from where it stops: the body is sent.
 */
export function noneMatch(field: string | undefined, etag: string): boolean {
  if (field === undefined) return false;
  if (field.trim() === '*') return true;
  const opaque = etag.startsWith('W/') ? etag.slice(2) : etag;
  // One element of the list (empty ones allowed), up to its comma or the end; a quoted tag may hold commas.
  const element = /[ \t,]*(?:W\/)?("[^"]*")[ \t]*(?:,|$)/y;
  for (let m = element.exec(field); m; m = element.exec(field)) {
    if (m[1] === opaque) return true;
    if (element.lastIndex >= field.length) break;
  }
  return false;
}

/** Bundle the browser code: `app.js` and its source map, by file name. */
export async function bundleClient(opts: UiAssetOptions = {}): Promise<Map<string, Asset>> {
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [CLIENT_ENTRY],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: ['chrome111', 'firefox113', 'safari16.2'],
    minify: opts.minify ?? true,
    sourcemap: 'linked',
    // A virtual path: with write: false nothing is written, it only names the outputs.
    outfile: here('./.bundle/app.js'),
    logLevel: 'silent',
  });
  return new Map(result.outputFiles.map((f) => [basename(f.path), asset(basename(f.path), f.contents)]));
}

/** The bundle `npm run build` wrote, or null when there is none (run from sources). */
export async function prebuiltBundle(dir = BUNDLE_DIR): Promise<Map<string, Asset> | null> {
  try {
    const files = await Promise.all(BUNDLE_FILES.map(async (name) => [name, asset(name, await readFile(join(dir, name)))] as const));
    return new Map(files);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Memoise an async builder; a failure is not kept, so the next request tries
 * again (e.g. after a fix to a source file while developing).
 */
function lazy<T>(make: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | null = null;
  return () => {
    pending ??= make().catch((err: unknown) => {
      pending = null;
      throw err;
    });
    return pending;
  };
}

export function createUiAssets(opts: UiAssetOptions = {}): UiAssets {
  const page = lazy(async () => asset('index.html', await readFile(PAGE_FILE)));
  const css = lazy(async () => asset('app.css', await readFile(CSS_FILE)));
  const bundle = lazy(async () => (await prebuiltBundle()) ?? bundleClient(opts));
  return {
    page,
    async get(name) {
      if (name === 'app.css') return css();
      if (name === 'app.js' || name === 'app.js.map') return (await bundle()).get(name);
      return undefined;
    },
  };
}
