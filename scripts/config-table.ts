/** Prints the README's configuration table from cli/config.ts SETTINGS (the single source). */
import { SETTINGS } from '../cli/config.js';

export function configTable(): string {
  const rows = Object.values(SETTINGS).map(
    (s) => `| \`${s.env}\` | \`${s.flag}\` | ${s.default === '' ? '(empty)' : `\`${s.default}\``} | ${s.doc.replace(/\|/g, '\\|')} |`,
  );
  return ['| variable | flag | default | what it sets |', '|---|---|---|---|', ...rows].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) process.stdout.write(configTable() + '\n');
