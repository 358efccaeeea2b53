/**
 * The repository's own documents point at things that exist: every relative
 * Markdown link, every heading anchor, and every repository path named in
 * backticks in README.md and docs/*.md.
 *
 * What is checked
 * - Links `[text](target)`, images `![alt](target)` and reference definitions
 *   `[label]: target`, outside code. A target with a scheme (`https:`,
 *   `mailto:`) or starting with `//` is external and not checked. Otherwise
 *   its path, relative to the document (or to the repository root when it
 *   starts with `/`), must exist inside the repository; an anchor (`#part`)
 *   into a Markdown file, or alone (the same file), must be the slug of one
 *   of that file's headings as GitHub makes it (lower case, punctuation
 *   dropped, spaces to `-`, `-1`, `-2`... for repeats) or an
 *   `<a id|name="...">` in it.
 * - Paths in inline code (`` `engine/relay.ts` ``). Each whitespace-separated
 *   word of a code span is a repository path when
 *     1. it contains a `/` and does not start with one (so routes such as
 *        `/v1/jobs` are not paths),
 *     2. it is made of letters, digits and `. _ - @ /` only (so `<id>`, `*.ts`,
 *        `KEY=value`, `host:port` and JSON are not), and
 *     3. its first segment (after a leading `./`) is one of the repository's
 *        top-level folders in ROOTS, or it ends in one of EXTENSIONS.
 *   Dotted names without a `/` (`ats.dispatch`, `demo.echo`, `package.json`)
 *   and folder names relative to some other folder (`sql/`, `stream/`) are
 *   therefore not checked; a file path in the docs must be written from the
 *   repository root. A trailing `:line` is ignored. Paths under the folders
 *   in GENERATED (`dist/`, what `npm run build` writes) are not in a checkout
 *   and are not checked.
 * Fenced and indented code blocks are skipped: they hold commands and
 * examples (a user's `./my-handlers.ts`), not references.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('..', import.meta.url));

/** Top-level folders of the repository whose paths are checked whatever their ending. */
const ROOTS = ['.ci', 'adapters', 'bench', 'cli', 'client', 'docs', 'engine', 'examples', 'machines', 'property-tests', 'scripts', 'server', 'tests'];
/** Folders made by commands (not in a checkout): paths under them are not checked. */
const GENERATED = ['dist', 'data', 'test-artifacts'];
/** Endings that make a word with a `/` a file path wherever it starts. */
const EXTENSIONS = ['.ts', '.mts', '.mjs', '.js', '.cjs', '.json', '.md', '.sh', '.xml', '.yml', '.yaml', '.sql', '.http', '.html', '.css', '.properties'];

interface Problem {
  line: number;
  what: string;
}

/** The text with fenced and indented code blocks blanked out (line numbers kept). */
export function withoutCodeBlocks(text: string): string {
  const lines = text.split('\n');
  let fence: { char: string; length: number } | null = null;
  let previousBlank = true;
  return lines.map((line) => {
    const open = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (fence) {
      const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(line);
      if (close && close[1]![0] === fence.char && close[1]!.length >= fence.length) fence = null;
      return '';
    }
    if (open) {
      fence = { char: open[1]![0]!, length: open[1]!.length };
      return '';
    }
    // An indented code block starts after a blank line (list continuations are indented too, but follow text).
    const indented = /^( {4}|\t)/.test(line) && previousBlank;
    previousBlank = line.trim() === '' || (indented && previousBlank);
    return indented ? '' : line;
  }).join('\n');
}

/** Inline code spans (CommonMark: a run of n backticks closed by a run of exactly n), with their line. */
export function codeSpans(text: string): Array<{ code: string; line: number; start: number; end: number }> {
  const spans: Array<{ code: string; line: number; start: number; end: number }> = [];
  const re = /(?<!`)(`+)(?!`)([\s\S]*?[^`])\1(?!`)/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    spans.push({ code: m[2]!.replace(/\n/g, ' ').trim(), line: lineOf(text, m.index), start: m.index, end: m.index + m[0].length });
  }
  return spans;
}

const lineOf = (text: string, index: number): number => text.slice(0, index).split('\n').length;

/** Is this word of a code span a repository path (the rule in the header)? */
export function isRepoPath(word: string): boolean {
  const w = word.replace(/:\d+(:\d+)?$/, '');
  if (!w.includes('/') || w.startsWith('/')) return false;
  if (!/^[A-Za-z0-9._@/-]+$/.test(w)) return false;
  const first = w.replace(/^\.\//, '').split('/')[0]!;
  return ROOTS.includes(first) || EXTENSIONS.some((e) => w.endsWith(e));
}

/** A heading's anchor as GitHub makes it (github-slugger's rule), before de-duplication. */
export function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // links and images: their text
    .replace(/<[^>]+>/g, '') // inline HTML tags
    .replace(/[`*_~]/g, (c) => (c === '_' ? '_' : '')); // code and emphasis markers
  return text.trim().toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
}

/** Every anchor a Markdown text offers: its headings' slugs (repeats numbered) and `<a id|name>`. */
export function anchorsOf(text: string): Set<string> {
  const plain = withoutCodeBlocks(text);
  const anchors = new Set<string>();
  const counts = new Map<string, number>();
  for (const line of plain.split('\n')) {
    const h = /^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/.exec(line);
    if (h) {
      const base = slug(h[1]!);
      const n = counts.get(base) ?? 0;
      counts.set(base, n + 1);
      anchors.add(n === 0 ? base : `${base}-${n}`);
    }
    for (const a of line.matchAll(/<a\s[^>]*?(?:id|name)="([^"]+)"/g)) anchors.add(a[1]!);
  }
  return anchors;
}

/**
 * The broken references of one Markdown document. `file` is its path from
 * `root`; files are looked up under `root`.
 */
export function checkMarkdown(text: string, file: string, root: string): Problem[] {
  const problems: Problem[] = [];
  const plain = withoutCodeBlocks(text);
  const spans = codeSpans(plain);

  for (const span of spans) {
    for (const word of span.code.split(/\s+/)) {
      if (!isRepoPath(word)) continue;
      const path = word.replace(/:\d+(:\d+)?$/, '');
      if (GENERATED.includes(path.replace(/^\.\//, '').split('/')[0]!)) continue;
      if (!existsSync(join(root, path))) problems.push({ line: span.line, what: `\`${path}\` names no file or folder of the repository` });
    }
  }

  // Links outside code spans: blank the spans (keeping newlines) so a link shown as code is not followed.
  let prose = plain;
  for (const s of [...spans].reverse()) prose = prose.slice(0, s.start) + plain.slice(s.start, s.end).replace(/[^\n]/g, ' ') + prose.slice(s.end);
  const targets: Array<{ target: string; index: number }> = [];
  for (const m of prose.matchAll(/\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/g)) {
    targets.push({ target: m[1]!.replace(/^<|>$/g, ''), index: m.index! });
  }
  for (const m of prose.matchAll(/^ {0,3}\[[^\]]+\]:[ \t]*(<[^>]*>|\S+)/gm)) {
    targets.push({ target: m[1]!.replace(/^<|>$/g, ''), index: m.index! });
  }
  for (const { target, index } of targets) {
    const problem = checkTarget(target, file, root, text);
    if (problem) problems.push({ line: lineOf(prose, index), what: problem });
  }
  return problems;
}

/** What is wrong with one link target of `file` (whose text is `text`), or null. */
function checkTarget(target: string, file: string, root: string, text: string): string | null {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) return null; // external
  const hash = target.indexOf('#');
  const rawPath = hash === -1 ? target : target.slice(0, hash);
  const anchor = hash === -1 ? null : decodeURIComponent(target.slice(hash + 1));
  let path: string;
  try {
    path = decodeURIComponent(rawPath.split('?')[0]!);
  } catch {
    return `link ${target}: not a valid URL path`;
  }
  if (path === '') {
    // An anchor into this very document.
    return anchor && !anchorsOf(text).has(anchor) ? `link ${target}: ${file} has no heading #${anchor}` : null;
  }
  const absolute = path.startsWith('/') ? join(root, path) : resolve(root, dirname(file), path);
  const fromRoot = relative(root, absolute);
  if (fromRoot.startsWith('..') || fromRoot.split(sep).includes('..')) return `link ${target} leaves the repository`;
  if (!existsSync(absolute)) return `link ${target}: ${fromRoot || '.'} does not exist`;
  if (anchor !== null && anchor !== '' && absolute.endsWith('.md') && statSync(absolute).isFile()) {
    if (!anchorsOf(readFileSync(absolute, 'utf8')).has(anchor)) return `link ${target}: ${fromRoot} has no heading #${anchor}`;
  }
  return null;
}

/** README.md and every docs/*.md, as paths from the repository root. */
function documents(): string[] {
  const docs = existsSync(join(REPO, 'docs'))
    ? readdirSync(join(REPO, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)
    : [];
  return ['README.md', ...docs];
}

// ---------------------------------------------------------------- the checker itself

describe('the docs link checker', () => {
  const check = (text: string, file = 'README.md') => checkMarkdown(text, file, REPO).map((p) => p.what);

  it('reports a relative link to a missing file, and passes one to an existing file', () => {
    assert.deepEqual(check('See [the relay](engine/relay.ts).'), []);
    const broken = check('See [the relay](engine/no-such-relay.ts) and [x](./nope/).');
    assert.equal(broken.length, 2);
    assert.match(broken[0]!, /engine\/no-such-relay\.ts does not exist/);
  });

  it('resolves links from the document\'s folder, and from the root with a leading /', () => {
    assert.deepEqual(check('[up](../engine/relay.ts) [root](/engine/relay.ts)', 'docs/x.md'), []);
    assert.equal(check('[wrong base](engine/relay.ts)', 'docs/x.md').length, 1);
    assert.match(check('[out](../../etc/passwd)', 'docs/x.md')[0]!, /leaves the repository/);
  });

  it('checks anchors against the headings of the target, or of the same file', () => {
    const text = '# Top\n\n## Running on MySQL and Kafka\n\n## Notes\n\n## Notes\n\n[a](#running-on-mysql-and-kafka) [b](#notes-1) [c](#missing)';
    assert.deepEqual(check(text), ['link #missing: README.md has no heading #missing']);
    assert.equal(check('[ok](README.md#configuration)', 'docs/x.md').length, 1, 'a path relative to docs/ is wrong');
    assert.deepEqual(check('[ok](../README.md#configuration)', 'docs/x.md'), []);
    assert.equal(check('[bad](../README.md#no-such-section)', 'docs/x.md').length, 1);
  });

  it('makes GitHub\'s heading slugs', () => {
    assert.equal(slug('Workers, cancels, leases and clocks'), 'workers-cancels-leases-and-clocks');
    assert.equal(slug('`kafka.sh consume` and the `ats.events` topic'), 'kafkash-consume-and-the-atsevents-topic');
    assert.equal(slug('Guarantees (and [tests](x.md))'), 'guarantees-and-tests');
    assert.deepEqual([...anchorsOf('# A\n## A\n```\n# not a heading\n```\n<a id="here"></a>')], ['a', 'a-1', 'here']);
  });

  it('checks backticked repository paths, and only those', () => {
    assert.deepEqual(check('`engine/relay.ts`, `scripts/kafka/kafka.sh`, `tests/integration/faults.test.ts`, `property-tests/`'), []);
    assert.deepEqual(check('`bash scripts/kafka/kafka.sh consume ats.events` and `engine/relay.ts:42`'), []);
    const broken = check('`engine/relays.ts` and `docs/nope.md` and `stream/protocol.ts` and `scripts/kafka/kafka-tools.sh`');
    assert.equal(broken.length, 4, broken.join('\n'));
    assert.match(broken[0]!, /`engine\/relays\.ts` names no file/);
  });

  it('does not check paths under folders that commands make (dist/ of npm run build)', () => {
    assert.deepEqual(check('run `node dist/cli/main.js start` or `./dist/server/ui/bundle/app.js`'), []);
  });

  it('does not take topics, job types, routes, variables or relative folder names for paths', () => {
    const words = ['ats.dispatch', 'demo.echo', '/v1/jobs', '/v1/jobs/<id>', 'sql/', 'stream/', 'ATS_HANDLERS=./my-handlers.ts',
      'application/json', '127.0.0.1:9092', 'bench/results/*.json', 'package.json', '.cache/kafka/tools', './data/ats.sqlite'];
    for (const w of words) assert.equal(isRepoPath(w), false, w);
    for (const w of ['engine/relay.ts', './engine/relay.ts', 'tests/', 'docs/stream.md', 'foo/bar.md']) assert.equal(isRepoPath(w), true, w);
  });

  it('skips code blocks and links shown as code, and external links', () => {
    const text = [
      '```bash', 'cat engine/missing.ts', '```', '',
      '~~~', '[x](missing.md)', '~~~', '',
      '    `engine/indented-missing.ts`', '',
      'A link shown as code: `[x](missing.md)`; external: [xstate](https://stately.ai/docs/xstate), <https://example.org/a/b.md>.',
    ].join('\n');
    assert.deepEqual(check(text), []);
  });

  it('reads code spans across a line break and with longer backtick runs', () => {
    assert.equal(check('the file `engine/\nmissing.ts`').length, 0, 'a space splits the words: neither half is a path');
    assert.equal(check('``tests/no-such`file.ts``').length, 0, 'a backtick is not a path character');
    assert.equal(check('``engine/missing.ts``').length, 1);
  });
});

// ---------------------------------------------------------------- the repository's documents

describe('the repository\'s documents', () => {
  it('README.md and docs/README.md exist', () => {
    assert.ok(existsSync(join(REPO, 'README.md')));
    assert.ok(existsSync(join(REPO, 'docs', 'README.md')), 'docs/README.md is the index of docs/');
  });

  it('every folder in ROOTS exists (the path rule reads them)', () => {
    for (const r of ROOTS) assert.ok(existsSync(join(REPO, r)), r);
  });

  for (const doc of documents()) {
    it(`${doc}: every relative link, anchor and backticked path exists`, () => {
      const problems = checkMarkdown(readFileSync(join(REPO, doc), 'utf8'), doc, REPO);
      assert.deepEqual(problems.map((p) => `${doc}:${p.line}: ${p.what}`), []);
    });
  }

  it('docs/README.md lists every document in docs/', () => {
    const index = readFileSync(join(REPO, 'docs', 'README.md'), 'utf8');
    const listed = new Set([...index.matchAll(/\]\(\.?\/?([^)#\s]+)/g)].map((m) => m[1]));
    const files = readdirSync(join(REPO, 'docs')).filter((f) => f !== 'README.md' && statSync(join(REPO, 'docs', f)).isFile());
    for (const f of files) assert.ok(listed.has(f), `docs/${f} is not linked from docs/README.md`);
  });

  it('README.md links docs/', () => {
    assert.match(readFileSync(join(REPO, 'README.md'), 'utf8'), /\]\(docs\/(README\.md)?\)/);
  });
});
