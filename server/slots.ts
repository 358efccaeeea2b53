/**
 * Long-lived requests (stream connections, workflow waits) counted per
 * holder (an API key, or a client address without one), per tenant (the
 * keys of a tenant other than the default: a tenant admin can mint many
 * keys), and in all. A slot is taken before the request holds anything and
 * given back once, when it ends.
 */
import { tenantShare } from '../engine/auth.js';
import { AtsError, type ErrorCode } from '../engine/errors.js';

/** Which bound refused a slot. */
type SlotBound = 'server' | 'tenant' | 'holder';

/** How a refusal reads: its 429 code, what is counted ("stream connections"), and how to free a slot ("close one first"). */
export interface SlotRefusal {
  readonly code: ErrorCode;
  readonly what: string;
  readonly free: string;
}

export interface SlotLimits {
  /** Per key, or per address without one. */
  readonly perHolder: number;
  /** All the keys of one tenant (other than the default) together. */
  readonly perTenant: number;
  /** The process. */
  readonly max: number;
}

/** Limits with a tenant's share of `max` (a quarter, at least one slot: `tenantShare`). */
export const slotLimits = (perHolder: number, max: number): SlotLimits => ({
  perHolder, max, perTenant: tenantShare(max),
});

export class Slots {
  private readonly byHolder = new Map<string, number>();
  private readonly byTenant = new Map<string, number>();
  private total = 0;

  constructor(private readonly limits: SlotLimits, private readonly refusal: SlotRefusal) {}

  /**
   * Takes a slot for `holder` of `tenant` (null for a holder without a key:
   * its address is its bound), or throws the refusal; the returned function
   * gives it back (once).
   */
  take(holder: string, tenant: string | null): () => void {
    const { perHolder, perTenant, max } = this.limits;
    if (this.total >= max) throw refused(this.refusal, 'server', max);
    if ((this.byHolder.get(holder) ?? 0) >= perHolder) throw refused(this.refusal, 'holder', perHolder);
    if (tenant !== null && (this.byTenant.get(tenant) ?? 0) >= perTenant) throw refused(this.refusal, 'tenant', perTenant);
    bump(this.byHolder, holder, +1);
    if (tenant !== null) bump(this.byTenant, tenant, +1);
    this.total++;
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.total--;
      bump(this.byHolder, holder, -1);
      if (tenant !== null) bump(this.byTenant, tenant, -1);
    };
  }
}

/** The refusal of one more slot by `bound`, whose limit is `limit`. */
function refused({ code, what, free }: SlotRefusal, bound: SlotBound, limit: number): AtsError {
  const message = bound === 'server'
    ? `This server has ${limit} ${what} open, its most; try again later`
    : bound === 'tenant'
      ? `This tenant's API keys hold ${limit} ${what}, the most one tenant may hold; ${free}`
      : `At most ${limit} ${what} may be open at once per API key (per address without one); ${free}`;
  return new AtsError(code, message);
}

function bump(counts: Map<string, number>, key: string, by: number): void {
  const n = (counts.get(key) ?? 0) + by;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}
