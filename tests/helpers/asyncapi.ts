/**
 * Checks messages against docs/asyncapi.yaml: a Kafka record (topic, key,
 * headers, value) against the messages its topic's channel declares, picked
 * by the `ats-kind` header; a WebSocket frame against the messages of the
 * stream's send (server → client) or receive (client → server) operation,
 * picked by `kind` / `op`. Payload and header schemas are compiled with ajv.
 *
 * The document leaves objects open (a consumer ignores fields it does not
 * know, so adding one keeps the schema version). Here they are closed: every
 * object schema with `properties` and no `additionalProperties` gets
 * `additionalProperties: false`, so a field or header the code sends and the
 * document does not name fails the check, as does one it names wrongly.
 *
 * Kafka records also follow the keying rule the document states: the key is
 * the job id, the payload's `jobId`; for a packed `transitions` record, the
 * `jobId` of its first transition; for a `child-ended` or a
 * `workflow-message` record on `ats.workflows`, the payload's `workflowId`
 * (the instance's; for a message, its target's).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { parse } from 'yaml';
import { CHILD_ENDED_KIND, TRANSITIONS_KIND, WORKFLOW_MESSAGE_KIND } from '../../engine/messages.js';
import { TOPICS, type LogMessage, type LogRecord } from '../../engine/ports.js';

export const ASYNCAPI_PATH = fileURLToPath(new URL('../../docs/asyncapi.yaml', import.meta.url));

/** A Kafka record as read or as published; `topic` is logical (`ats.dispatch`) or physical (`<prefix>ats.dispatch`, with `prefix`). */
export type KafkaRecord = Pick<LogRecord | LogMessage, 'topic' | 'key' | 'value' | 'headers'>;

export type CheckResult = { ok: true; message: string } | { ok: false; errors: string[] };

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

interface CompiledMessage {
  /** The message's id under `components.messages`. */
  name: string;
  /** `ats-kind` const of its headers (Kafka), or the `kind` / `op` const of its payload (stream). */
  tag: string | null;
  headers: ValidateFunction | null;
  payload: ValidateFunction;
  key: ValidateFunction | null;
}

export class AsyncApiContract {
  /** The document as parsed, $refs left in place. */
  readonly doc: Obj;
  private readonly byTopic = new Map<string, CompiledMessage[]>();
  /** Channels whose address has a parameter besides the prefix (`ats.dispatch.{lane}`): any value matches it. */
  private readonly byPattern: Array<{ pattern: RegExp; messages: CompiledMessage[] }> = [];
  private readonly streamSend: CompiledMessage[];
  private readonly streamReceive: CompiledMessage[];
  private readonly examples: Array<{ message: string; example: Obj }> = [];

  constructor(text = readFileSync(ASYNCAPI_PATH, 'utf8')) {
    this.doc = parse(text) as Obj;
    const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false });
    addFormats.default(ajv);
    const compiled = new Map<string, CompiledMessage>();
    const messages = this.at('#/components/messages') as Obj;
    for (const [name, raw] of Object.entries(messages)) {
      const m = raw as Obj;
      const traits = ((m.traits ?? []) as Json[]).map((t) => this.resolve(t) as Obj);
      const kafkaKey = traits.map((t) => ((t.bindings as Obj | undefined)?.kafka as Obj | undefined)?.key).find((k) => k !== undefined);
      const headers = m.headers === undefined ? null : this.schema(m.headers);
      const payload = this.schema(m.payload);
      const tag = constOf(headers, 'ats-kind') ?? constOf(payload, 'kind') ?? constOf(payload, 'op');
      compiled.set(name, {
        name, tag,
        headers: headers === null ? null : ajv.compile(headers),
        payload: ajv.compile(payload),
        key: kafkaKey === undefined ? null : ajv.compile(this.schema(kafkaKey)),
      });
      for (const example of (m.examples ?? []) as Obj[]) this.examples.push({ message: name, example });
    }
    /** Follows a chain of $refs (operation → channel message → component) to the component's name. */
    const messageOf = (ref: Json) => {
      let node = ref;
      let last = '';
      for (let i = 0; i < 20 && node && typeof node === 'object' && !Array.isArray(node) && typeof node.$ref === 'string'; i++) {
        last = node.$ref;
        node = this.at(last);
      }
      return (last.startsWith('#/components/messages/') && compiled.get(last.split('/').pop()!)) || fail(`not a message: ${JSON.stringify(ref)}`);
    };
    const channels = this.at('#/channels') as Obj;
    for (const raw of Object.values(channels)) {
      const channel = raw as Obj;
      const address = String(channel.address);
      if (!address.startsWith('{prefix}')) continue;
      const list = Object.values(channel.messages as Obj).map((ref) => messageOf(ref));
      const topic = address.slice('{prefix}'.length);
      if (!topic.includes('{')) this.byTopic.set(topic, list);
      else {
        const source = topic.split(/\{[^}]+\}/).map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[A-Za-z0-9._-]+');
        this.byPattern.push({ pattern: new RegExp(`^${source}$`), messages: list });
      }
    }
    const streamOps = (action: string) => Object.values(this.at('#/operations') as Obj)
      .map((o) => o as Obj)
      .filter((o) => o.action === action && (o.channel as Obj).$ref === '#/channels/stream')
      .flatMap((o) => (o.messages as Json[]).map((ref) => messageOf(ref)));
    this.streamSend = streamOps('send');
    this.streamReceive = streamOps('receive');
  }

  /** The logical topics the document describes. */
  get topics(): string[] {
    return [...this.byTopic.keys()];
  }

  /** Checks one Kafka record. `prefix` is stripped from a physical topic name. */
  checkRecord(record: KafkaRecord, prefix = ''): CheckResult {
    const topic = record.topic.startsWith(prefix) ? record.topic.slice(prefix.length) : record.topic;
    const candidates = this.byTopic.get(topic) ?? this.byPattern.find((p) => p.pattern.test(topic))?.messages;
    if (!candidates) return { ok: false, errors: [`topic ${record.topic}: not in the document (prefix ${JSON.stringify(prefix)})`] };
    const kind = record.headers['ats-kind'];
    const message = candidates.find((m) => m.tag === kind);
    if (!message) {
      return { ok: false, errors: [`topic ${topic}: ats-kind ${JSON.stringify(kind)} is none of ${candidates.map((m) => m.tag).join(', ')}`] };
    }
    const errors: string[] = [];
    let value: unknown;
    try {
      value = JSON.parse(record.value);
    } catch {
      return { ok: false, errors: [`${message.name}: the value is not JSON: ${record.value.slice(0, 200)}`] };
    }
    check(errors, `${message.name} headers`, message.headers, { ...record.headers });
    check(errors, `${message.name} payload`, message.payload, value);
    check(errors, `${message.name} key`, message.key, record.key);
    const { id, whose } = keyedBy(message.tag, value);
    if (record.key !== id) errors.push(`${message.name}: key ${JSON.stringify(record.key)} is not ${whose} ${JSON.stringify(id)}`);
    return errors.length === 0 ? { ok: true, message: message.name } : { ok: false, errors };
  }

  /** Checks one WebSocket message the server sent (`direction: 'send'`) or a client sends (`'receive'`). */
  checkStreamMessage(frame: string | object, direction: 'send' | 'receive' = 'send'): CheckResult {
    let value: unknown = frame;
    if (typeof frame === 'string') {
      try {
        value = JSON.parse(frame);
      } catch {
        return { ok: false, errors: [`stream: not JSON: ${frame.slice(0, 200)}`] };
      }
    }
    const field = direction === 'send' ? 'kind' : 'op';
    const tag = (value as Record<string, unknown> | null)?.[field];
    const candidates = direction === 'send' ? this.streamSend : this.streamReceive;
    const message = candidates.find((m) => m.tag === tag);
    if (!message) return { ok: false, errors: [`stream ${direction}: ${field} ${JSON.stringify(tag)} is none of ${candidates.map((m) => m.tag).join(', ')}`] };
    const errors: string[] = [];
    check(errors, `${message.name} payload`, message.payload, value);
    return errors.length === 0 ? { ok: true, message: message.name } : { ok: false, errors };
  }

  /** Fails (assert) unless every record matches; returns how many records of each message there were. */
  assertRecords(records: Iterable<KafkaRecord>, prefix = ''): Map<string, number> {
    const counts = new Map<string, number>();
    const problems: string[] = [];
    for (const r of records) {
      const result = this.checkRecord(r, prefix);
      if (result.ok) counts.set(result.message, (counts.get(result.message) ?? 0) + 1);
      else problems.push(`${r.topic} key ${r.key} value ${r.value.slice(0, 300)}\n  ${result.errors.join('\n  ')}`);
    }
    assert.deepEqual(problems, [], `records that do not match ${ASYNCAPI_PATH}`);
    return counts;
  }

  /** Fails (assert) unless every server → client message matches; returns how many of each there were. */
  assertStreamMessages(frames: Iterable<string | object>): Map<string, number> {
    const counts = new Map<string, number>();
    const problems: string[] = [];
    for (const f of frames) {
      const result = this.checkStreamMessage(f);
      if (result.ok) counts.set(result.message, (counts.get(result.message) ?? 0) + 1);
      else problems.push(`${JSON.stringify(f).slice(0, 300)}\n  ${result.errors.join('\n  ')}`);
    }
    assert.deepEqual(problems, [], `stream messages that do not match ${ASYNCAPI_PATH}`);
    return counts;
  }

  /** The document's own message examples, as Kafka records or stream frames, to check against their schemas. */
  exampleRecords(): Array<{ message: string; record: KafkaRecord | null; payload: unknown }> {
    const topicOf = new Map<string, { topic: string; tag: string | null }>();
    for (const [topic, list] of this.byTopic) for (const m of list) topicOf.set(m.name, { topic, tag: m.tag });
    return this.examples.map(({ message, example }) => {
      const on = topicOf.get(message);
      const payload = example.payload;
      const record = on === undefined ? null : {
        topic: on.topic, key: String(keyedBy(on.tag, payload).id), value: JSON.stringify(payload), headers: example.headers as Record<string, string>,
      };
      return { message, record, payload };
    });
  }

  /** A node of the document by its local JSON pointer (`#/a/b`). */
  at(pointer: string): Json {
    assert.ok(pointer.startsWith('#/'), `only local references: ${pointer}`);
    let node: Json = this.doc;
    for (const part of pointer.slice(2).split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))) {
      if (node === null || typeof node !== 'object' || !Object.hasOwn(node, part)) fail(`${pointer} not found in the document`);
      node = (node as Obj)[part]!;
    }
    return node;
  }

  /** Follows `$ref`s to the node they name. */
  private resolve(node: Json): Json {
    let n = node;
    for (let i = 0; i < 20 && n && typeof n === 'object' && !Array.isArray(n) && typeof n.$ref === 'string'; i++) n = this.at(n.$ref);
    return n;
  }

  /** A schema with its $refs inlined (the document has no cycles) and its objects closed (see the file's doc). */
  private schema(node: Json, depth = 0): Obj {
    assert.ok(depth < 50, 'schema nested too deep (a $ref cycle?)');
    const walk = (n: Json): Json => {
      if (Array.isArray(n)) return n.map(walk);
      if (n === null || typeof n !== 'object') return n;
      if (typeof n.$ref === 'string') {
        const { $ref, ...siblings } = n;
        const target = this.schema(this.at($ref as string), depth + 1);
        return Object.keys(siblings).length === 0 ? target : { ...(walk(siblings) as Obj), allOf: [target] };
      }
      const out: Obj = {};
      for (const [k, v] of Object.entries(n)) out[k] = k === 'properties' ? mapValues(v as Obj, walk) : walk(v);
      if (out.type === 'object' && out.properties !== undefined && out.additionalProperties === undefined) out.additionalProperties = false;
      return out;
    };
    return walk(node) as Obj;
  }
}

/**
 * The id a Kafka record of kind `tag` is keyed by, per the document: the
 * payload's `jobId`; for a packed `transitions` record, its first
 * transition's; for a `child-ended` record, the payload's `workflowId` (its
 * instance's children's ends share a partition); for a `workflow-message`
 * record, the payload's `workflowId` too, the target's (the messages one
 * instance is sent share a partition). `whose` names it for an error message.
 */
function keyedBy(tag: string | null, value: unknown): { id: unknown; whose: string } {
  if (tag === TRANSITIONS_KIND) {
    const list = (value as { transitions?: unknown } | null)?.transitions;
    const first = Array.isArray(list) ? (list[0] as { jobId?: unknown } | null | undefined) : undefined;
    return { id: first?.jobId, whose: "the first transition's jobId" };
  }
  if (tag === CHILD_ENDED_KIND || tag === WORKFLOW_MESSAGE_KIND) {
    return { id: (value as { workflowId?: unknown } | null)?.workflowId, whose: "the payload's workflowId" };
  }
  return { id: (value as { jobId?: unknown } | null)?.jobId, whose: "the payload's jobId" };
}

/** The const of `schema.properties[name]`, if any (through a single allOf). */
function constOf(schema: Obj | null, name: string): string | null {
  const prop = (schema?.properties as Obj | undefined)?.[name] as Obj | undefined;
  const c = prop?.const ?? ((prop?.allOf as Obj[] | undefined)?.[0]?.const);
  return typeof c === 'string' ? c : null;
}

function mapValues(o: Obj, f: (v: Json) => Json): Obj {
  const out: Obj = {};
  for (const [k, v] of Object.entries(o)) out[k] = f(v);
  return out;
}

function check(errors: string[], what: string, validate: ValidateFunction | null, value: unknown): void {
  if (validate === null || validate(value)) return;
  errors.push(`${what}: ${describe(validate.errors ?? [])}`);
}

function describe(errors: readonly ErrorObject[]): string {
  return errors.map((e) => `${e.instancePath || '/'} ${e.message}${e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : ''}`).join('; ');
}

function fail(message: string): never {
  throw new Error(`docs/asyncapi.yaml: ${message}`);
}

let shared: AsyncApiContract | null = null;
/** The contract of docs/asyncapi.yaml, loaded once per process. */
/** `record` with its JSON value changed by `f`: a record that should no longer match. */
export function editRecord<T extends KafkaRecord>(record: T, f: (value: Record<string, unknown>) => void): T {
  const v = JSON.parse(record.value) as Record<string, unknown>;
  f(v);
  return { ...record, value: JSON.stringify(v) };
}

/** Asserts that `contract` refuses `record` (under topic prefix `prefix`), with an error matching `pattern`. */
export function assertRefused(contract: AsyncApiContract, record: KafkaRecord, pattern: RegExp, prefix = ''): void {
  const r = contract.checkRecord(record, prefix);
  assert.equal(r.ok, false, `accepted: ${JSON.stringify(record)}`);
  assert.match((r as { errors: string[] }).errors.join('\n'), pattern);
}

export function asyncApi(): AsyncApiContract {
  return (shared ??= new AsyncApiContract());
}

/** The logical topics, for a check that the document names each one the code publishes to. */
export const CODE_TOPICS: readonly string[] = Object.values(TOPICS);
