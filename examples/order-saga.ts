/**
 * A workflow module: `ATS_HANDLERS=./examples/order-saga.ts npm start`, then
 * `POST /v1/workflows {"name":"order.fulfil","input":{"orderId":"o-1","amount":30}}`.
 *
 * An order saga: charge the card, then reserve the stock and book the
 * shipping in parallel, then confirm. When a step after the charge fails
 * (here: shipping to a country it does not serve), the saga undoes what
 * succeeded, in reverse: it releases whatever stock the order holds, then
 * refunds the charge. A refund that fails after its retries ends the order
 * `unresolved`, for a person to settle. Every step is a job with its own retries; the
 * workflow's state, its children and its history are in the database.
 */
import { assign, setup } from 'xstate';
import { defineHandler, job, NonRetryableError, Type, type HandlerRegistry } from 'ai-task-scheduler/handlers';

interface Order {
  orderId: string;
  amount: number;
  country?: string;
}

interface OrderContext extends Order {
  chargeId: string | null;
  reservationId: string | null;
  trackingId: string | null;
  failure: string | null;
}

const errorMessage = (error: unknown): string =>
  error && typeof error === 'object' && 'message' in error ? String((error as { message: unknown }).message) : String(error);

export const orderSaga = setup({
  types: { context: {} as OrderContext, input: {} as Order },
  actors: {
    charge: job<{ chargeId: string }, { orderId: string; amount: number }>('payment.charge'),
    reserve: job<{ reservationId: string }, { orderId: string }>('stock.reserve'),
    ship: job<{ trackingId: string }, { orderId: string; country: string }>('shipping.book', { maxAttempts: 2 }),
    release: job<unknown, { orderId: string }>('stock.release'),
    refund: job<unknown, { chargeId: string; amount: number }>('payment.refund'),
  },
}).createMachine({
  id: 'order',
  initial: 'charging',
  context: ({ input }) => ({
    orderId: input.orderId, amount: input.amount, country: input.country ?? 'NL',
    chargeId: null, reservationId: null, trackingId: null, failure: null,
  }),
  states: {
    charging: {
      invoke: {
        id: 'charge', src: 'charge', input: ({ context }) => ({ orderId: context.orderId, amount: context.amount }),
        onDone: { target: 'fulfilling', actions: assign({ chargeId: ({ event }) => event.output.chargeId }) },
        onError: { target: 'failed', actions: assign({ failure: ({ event }) => errorMessage(event.error) }) },
      },
    },
    fulfilling: {
      type: 'parallel',
      states: {
        stock: {
          initial: 'reserving',
          states: {
            reserving: {
              invoke: {
                id: 'reserve', src: 'reserve', input: ({ context }) => ({ orderId: context.orderId }),
                onDone: { target: 'reserved', actions: assign({ reservationId: ({ event }) => event.output.reservationId }) },
              },
            },
            reserved: { type: 'final' },
          },
        },
        shipping: {
          initial: 'booking',
          states: {
            booking: {
              invoke: {
                id: 'ship', src: 'ship', input: ({ context }) => ({ orderId: context.orderId, country: context.country ?? 'NL' }),
                onDone: { target: 'booked', actions: assign({ trackingId: ({ event }) => event.output.trackingId }) },
              },
            },
            booked: { type: 'final' },
          },
        },
      },
      onDone: 'confirmed',
      // Any step of the parallel state failing starts the compensation (the other step's job is cancelled).
      on: {
        'xstate.error.actor.reserve': { target: 'releasing', actions: assign({ failure: ({ event }) => errorMessage(event.error) }) },
        'xstate.error.actor.ship': { target: 'releasing', actions: assign({ failure: ({ event }) => errorMessage(event.error) }) },
      },
    },
    // Release whatever stock the order holds: the reservation may have been made although its end had
    // not arrived when the failure did (its job was then cancelled too late). Releasing nothing is fine.
    releasing: {
      invoke: { id: 'release', src: 'release', input: ({ context }) => ({ orderId: context.orderId }), onDone: 'refunding', onError: 'refunding' },
    },
    refunding: {
      invoke: {
        id: 'refund', src: 'refund', input: ({ context }) => ({ chargeId: context.chargeId ?? '', amount: context.amount }),
        onDone: 'refunded',
        // The charge could not be refunded after every retry: the order ends here for a person to settle.
        onError: { target: 'unresolved', actions: assign({ failure: ({ context, event }) => `${context.failure}; refund failed: ${errorMessage(event.error)}` }) },
      },
    },
    confirmed: { type: 'final' },
    refunded: { type: 'final' },
    unresolved: { type: 'final' },
    failed: { type: 'final' },
  },
  output: ({ context }) => ({
    orderId: context.orderId, chargeId: context.chargeId, trackingId: context.trackingId, failure: context.failure,
  }),
});

/** The steps' handlers: stand-ins for a payment provider, a warehouse and a carrier. */
export const handlers = [
  defineHandler('payment.charge', {
    payload: Type.Object({ orderId: Type.String(), amount: Type.Number({ exclusiveMinimum: 0 }) }),
    run: async (p, ctx) => ({ chargeId: `ch-${p.orderId}-${ctx.idempotencyKey.slice(-6)}`, amount: p.amount }),
  }),
  defineHandler('stock.reserve', {
    payload: Type.Object({ orderId: Type.String() }),
    run: async (p) => ({ reservationId: `rs-${p.orderId}` }),
  }),
  defineHandler('shipping.book', {
    payload: Type.Object({ orderId: Type.String(), country: Type.String() }),
    run: async (p) => {
      if (p.country !== 'NL' && p.country !== 'BE') throw new NonRetryableError(`no carrier ships to ${p.country}`);
      return { trackingId: `tr-${p.orderId}` };
    },
  }),
  defineHandler('stock.release', {
    payload: Type.Object({ orderId: Type.String() }),
    run: async (p) => ({ released: `rs-${p.orderId}` }),
  }),
  defineHandler('payment.refund', {
    payload: Type.Object({ chargeId: Type.String(), amount: Type.Number() }),
    run: async (p) => ({ refunded: p.chargeId, amount: p.amount }),
  }),
];

/** Registers the workflow; ATS_HANDLERS loads `handlers` and calls this. */
export function register(registry: HandlerRegistry): void {
  registry.workflow('order.fulfil', orderSaga, { version: 1 });
}
