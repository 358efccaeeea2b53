/**
 * The WebSocket stream, `GET /v1/stream` (protocol v1: notes/STREAM.md).
 *
 * ```ts
 * const app = await buildApp({ ...deps, plugins: [streamPlugin({ store, log, clock, logger, instanceId })] });
 * ```
 * @packageDocumentation
 */
export { streamGroupId, streamPlugin } from './plugin.js';
export type { StreamDeps } from './plugin.js';
export { compileStreamOptions, STREAM_DEFAULTS } from './options.js';
export type { CompiledStreamOptions, StreamOptions } from './options.js';
export { decodeStreamCursor, encodeStreamCursor } from './cursor.js';
export type { StreamFilter } from './protocol.js';
