/**
 * The in-process `EventLog` (embedded mode and tests).
 * @packageDocumentation
 */
export { createMemoryLog } from './memory-log.js';
export type { DrainOptions, MemoryLog, MemoryLogHooks, MemoryLogOptions, UnconsumedRetention } from './memory-log.js';
export { partitionForKey } from './partition-for-key.js';
