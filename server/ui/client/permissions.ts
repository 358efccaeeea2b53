/**
 * What the tab's API key may do: `GET /v1/keys/self` names its scopes, and
 * each write action of the console needs one (docs/security.md): Submit the
 * `submit` scope, Cancel and Redrive (one job or a selection) `operate`. An
 * action the key may not take is disabled, saying why, rather than left to
 * answer 403 when pressed. A server that does not say (an older one, without
 * the route, or one that could not answer) leaves every action enabled: its
 * answers then tell.
 */
export type Action = 'submit' | 'cancel' | 'redrive';
type Scope = 'submit' | 'read' | 'operate' | 'admin';

const NEEDS: ReadonlyMap<Action, Scope> = new Map<Action, Scope>([['submit', 'submit'], ['cancel', 'operate'], ['redrive', 'operate']]);
const VERB: ReadonlyMap<Action, string> = new Map<Action, string>([['submit', 'submit jobs'], ['cancel', 'cancel jobs'], ['redrive', 'redrive jobs']]);

export interface Permissions {
  /** Why the key may not take `action`, for a tooltip; null when it may, or when its scopes are not known. */
  denied(action: Action): string | null;
  /** One line for the page naming what is disabled and why; empty when nothing is. */
  summary(): string;
}

/** The scopes are not known: every action stays enabled. */
export const UNKNOWN_PERMISSIONS: Permissions = { denied: () => null, summary: () => '' };

/** `GET /v1/keys/self`'s answer as far as the console reads it: its scopes, each a string. */
export const isCaller = (v: unknown): v is { scopes: string[] } =>
  typeof v === 'object' && v !== null && Array.isArray((v as { scopes?: unknown }).scopes)
  && (v as { scopes: unknown[] }).scopes.every((s) => typeof s === 'string');

/** The permissions of the caller `GET /v1/keys/self` answered (anything else: not known). */
export function permissionsOf(caller: unknown): Permissions {
  if (!isCaller(caller)) return UNKNOWN_PERMISSIONS;
  const scopes = new Set(caller.scopes);
  const held = caller.scopes.length ? caller.scopes.join(', ') : 'none';
  const denied = (action: Action): string | null => {
    const needs = NEEDS.get(action)!;
    return scopes.has(needs) ? null : `This tab's API key may not ${VERB.get(action)}: that needs the ${needs} scope, and the key has ${held}.`;
  };
  return {
    denied,
    summary() {
      const off = [...NEEDS.keys()].filter((a) => denied(a) !== null);
      if (!off.length) return '';
      const names = off.map((a) => a[0]!.toUpperCase() + a.slice(1));
      return `Key scopes: ${held}. ${names.join(', ')} ${off.length === 1 ? 'is' : 'are'} disabled (${[...new Set(off.map((a) => NEEDS.get(a)))].join(', ')} scope needed).`;
    },
  };
}

/** Shows `why` on `button` as its tooltip (a disabled button says why it is); none when it may be pressed. */
export function explain(button: HTMLElement, why: string | null): void {
  if (why) button.title = why;
  else button.removeAttribute('title');
}
