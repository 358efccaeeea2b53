/**
 * The handler API, for handler modules outside this repository
 * (`import { defineHandler } from 'ai-task-scheduler/handlers'`). A module
 * that ATS_HANDLERS (or `--handlers`) names exports `handlers` (an array of
 * `defineHandler(...)` results) and/or `register(registry)`. See README.md,
 * "Your own handlers".
 */
export { defineHandler, HandlerRegistry, type HandlerDefinition, type HandlerModule } from './handlers.js';
export { NonRetryableError } from './errors.js';
/**
 * Workflows: `job(type)` runs an invocation as a job; `sendToWorkflow(id, event)` sends another
 * instance an event, durably; `registry.workflow(name, machine, { version })` registers a machine.
 */
export { job, sendToWorkflow, type WorkflowJobOptions } from '../machines/workflow.js';
export type { Handler, HandlerContext, Logger } from './ports.js';
/** What `ctx.signal.reason` is once the signal aborts: `kind` says why (timeout, cancelled, lease-lost, shutdown). */
export type { AbortReason, AbortKind } from './abort-reason.js';
export type { PayloadCheck } from './payload-schema.js';
/** TypeBox, the schema builder payload schemas are written with (the same copy the scheduler compiles). */
export { Type, type Static, type TSchema } from '@sinclair/typebox';
