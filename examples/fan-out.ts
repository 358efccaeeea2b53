/**
 * A fan-out / fan-in workflow module: `ATS_HANDLERS=./examples/fan-out.ts npm start`, then
 * `POST /v1/workflows {"name":"album.make","input":{"album":"a-1","photos":["p1.jpg","p2.jpg"]}}`.
 *
 * One job per photo resizes it; all of them run at once (as many as the
 * workers take). The workflow counts the results as they come back, in any
 * order, and when the last one is in it publishes the album with one more job.
 * A photo whose resize fails for good is left out, and the album says so.
 */
import { assign, enqueueActions, setup } from 'xstate';
import { defineHandler, job, NonRetryableError, Type, type HandlerRegistry } from 'ai-task-scheduler/handlers';

interface Resized {
  photo: string;
  thumbnail: string;
}

interface AlbumContext {
  album: string;
  photos: string[];
  resized: Resized[];
  failed: number;
}

/** The event a spawned job's end delivers (`xstate.done.actor.<id>` / `xstate.error.actor.<id>`). */
type ChildEnd = { type: `xstate.done.actor.${string}`; output: Resized } | { type: `xstate.error.actor.${string}`; error: unknown };

export const albumMake = setup({
  types: { context: {} as AlbumContext, input: {} as { album: string; photos: string[] }, events: {} as ChildEnd },
  actors: {
    resize: job<Resized, { photo: string }>('image.resize', { maxAttempts: 2 }),
    publish: job<{ url: string }, { album: string; thumbnails: string[] }>('album.publish'),
  },
}).createMachine({
  id: 'album',
  initial: 'resizing',
  context: ({ input }) => ({ album: input.album, photos: input.photos, resized: [], failed: 0 }),
  states: {
    resizing: {
      // Fan out: one job per photo, each a child of its own id.
      entry: enqueueActions(({ context, enqueue }) => {
        for (const [i, photo] of context.photos.entries()) enqueue.spawnChild('resize', { id: `photo-${i}`, input: { photo } });
      }),
      // Fan in: every child's end counts, in whatever order it comes.
      on: {
        'xstate.done.actor.*': { actions: assign({ resized: ({ context, event }) => [...context.resized, (event as Extract<ChildEnd, { output: Resized }>).output] }) },
        'xstate.error.actor.*': { actions: assign({ failed: ({ context }) => context.failed + 1 }) },
      },
      always: { guard: ({ context }) => context.resized.length + context.failed === context.photos.length, target: 'publishing' },
    },
    publishing: {
      invoke: {
        id: 'publish', src: 'publish',
        input: ({ context }) => ({ album: context.album, thumbnails: context.resized.map((r) => r.thumbnail).sort() }),
        onDone: 'published',
      },
    },
    published: { type: 'final' },
  },
  output: ({ context }) => ({ album: context.album, thumbnails: context.resized.length, failed: context.failed }),
});

export const handlers = [
  defineHandler('image.resize', {
    payload: Type.Object({ photo: Type.String({ minLength: 1 }) }),
    run: async ({ photo }) => {
      if (!/\.(jpe?g|png)$/i.test(photo)) throw new NonRetryableError(`${photo} is not an image`);
      return { photo, thumbnail: photo.replace(/\.(\w+)$/, '.thumb.$1') };
    },
  }),
  defineHandler('album.publish', {
    payload: Type.Object({ album: Type.String(), thumbnails: Type.Array(Type.String()) }),
    run: async ({ album, thumbnails }) => ({ url: `/albums/${album}`, count: thumbnails.length }),
  }),
];

/** Registers the workflow; ATS_HANDLERS loads `handlers` and calls this. */
export function register(registry: HandlerRegistry): void {
  registry.workflow('album.make', albumMake, { version: 1 });
}
