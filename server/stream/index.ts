/**
 * The WebSocket stream, `GET /v1/stream` (protocol v1: docs/stream.md).
 *
 * ```ts
 * const stream = streamPlugin({ store, clock, logger, auth }); // auth: the same keys as the app's, re-checked on open connections
 * const transitions = new TransitionService({ ...deps, onCommit: () => stream.wake() });
 * const app = await buildApp({ ...deps, auth, transitions, plugins: [stream] });
 * ```
 * @packageDocumentation
 */
export { MAX_STREAM_CONNECTIONS, streamPlugin } from './plugin.js';
export type { StreamDeps, StreamPlugin } from './plugin.js';
export type { StreamAuth } from './key-check.js';
export { compileStreamOptions, STREAM_DEFAULTS } from './options.js';
export type { CompiledStreamOptions, StreamOptions } from './options.js';
export { decodeCursorPosition, decodeStreamCursor, encodeStreamCursor } from './cursor.js';
export type { CursorSource } from './cursor.js';
export type { StreamFilter, StreamWorkflowMessage } from './protocol.js';
