/**
 * The OpenTelemetry SDK for `ats start`, set up from the standard `OTEL_*`
 * variables before the roles start and shut down (its spans flushed) when
 * they stopped. Off unless an exporter is configured: then no SDK is loaded,
 * the engine gets no tracer and does no tracing work. README.md, "Tracing".
 */
import { diag, DiagLogLevel, type DiagLogger, type Tracer } from '@opentelemetry/api';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { AtsError } from '../engine/errors.js';
import type { Logger } from '../engine/ports.js';
import { RepeatedLines, REPEAT_WINDOW_MS } from '../engine/repeated-lines.js';
import { TRACER_NAME } from '../engine/tracing.js';

/**
 * The longest the shutdown waits for the last spans to reach the collector. The exporter retries a
 * collector that refuses or does not answer for up to about 10 s, which the process's shutdown
 * (the handlers' grace plus a few seconds) cannot always spare: spans a collector will not take are
 * not worth exiting 1 for.
 */
export const FLUSH_LIMIT_MS = 2000;

/** A running SDK: the tracer the roles use, and its shutdown (flushes what is buffered, for up to FLUSH_LIMIT_MS). */
export interface Tracing {
  tracer: Tracer;
  /**
   * Where the SDK's own errors and warnings go from now on (an export the collector refused or
   * never answered, a bad setting), as `warn` lines: the process's log once it has one. Those
   * from before (the first EARLY_DIAGNOSTICS_KEPT) are kept and written to it first, so a bad
   * setting reported while the SDK started is not lost; a wrong endpoint does not lose every span
   * without a word.
   */
  reportTo(logger: Logger): void;
  shutdown(): Promise<void>;
}

/**
 * The most SDK diagnostics kept until the process has a log (`reportTo`): the SDK reports bad
 * settings (an unknown OTEL_TRACES_SAMPLER, a bad OTEL_BSP_*) while the provider is built, long
 * before compose() made the logger; bounded, because an export failing every 50 ms before then
 * would otherwise grow the buffer without end.
 */
export const EARLY_DIAGNOSTICS_KEPT = 100;

/** A diagnostic said again within this is written at debug (a refused export fails every batch). */
export const DIAGNOSTIC_REPEAT_MS = REPEAT_WINDOW_MS;

/** Distinct diagnostics remembered for DIAGNOSTIC_REPEAT_MS (the least recently written forgotten first). */
const DIAGNOSTIC_KEYS = 100;

/** Where the OTLP exporter sends spans when no endpoint is set (the OpenTelemetry default). */
const DEFAULT_TRACES_URL = 'http://localhost:4318/v1/traces';

interface Diagnostics {
  /** What the SDK's `diag` calls. */
  sink: DiagLogger;
  /** The log from now on; the diagnostics kept until now are written to it first. */
  reportTo(logger: Logger): void;
  /** The log, once there is one. */
  logger(): Logger | null;
}

/**
 * An error the SDK's global error handler reported: it writes the error to `diag` as the JSON of its
 * properties, stack included (@opentelemetry/core's loggingErrorHandler). With the processors
 * startTracing makes, that is an export that failed (refused, unanswered, timed out). Null for
 * any other diagnostic.
 */
function reportedError(message: string): { message: string; code?: unknown; data?: unknown } | null {
  if (!message.startsWith('{')) return null;
  try {
    const e = JSON.parse(message) as { message?: unknown; stack?: unknown; code?: unknown; data?: unknown } | null;
    return e && typeof e.message === 'string' && typeof e.stack === 'string' ? { message: e.message, code: e.code, data: e.data } : null;
  } catch {
    return null;
  }
}

/**
 * The SDK's diagnostics (errors and warnings only) as `tracing:` warn lines: of the process's log
 * once there is one; until then the first EARLY_DIAGNOSTICS_KEPT are kept, and the count of the
 * rest is told when the log comes. A failed export is `tracing: spans not exported: <error>` with
 * the `endpoint` (`otlpUrl`, when the OTLP exporter is on) and the error's `code`, not the error's
 * JSON and stack. A line said again within DIAGNOSTIC_REPEAT_MS is written at debug (a collector
 * that refuses spans fails every batch), and the next one written after that carries `repeated`,
 * how many like it were lowered meanwhile.
 */
function diagnostics(otlpUrl: string | null, now: () => number): Diagnostics {
  let logger: Logger | null = null;
  const early: Array<{ msg: string; fields: Record<string, unknown> }> = [];
  let droppedEarly = 0;
  const said = new RepeatedLines(now, DIAGNOSTIC_KEYS);
  const write = (to: Logger, msg: string, fields: Record<string, unknown>) => {
    const { lower, repeated } = said.check(msg);
    if (lower) to.debug(msg, fields);
    else to.warn(msg, repeated > 0 ? { ...fields, repeated } : fields);
  };
  const line = (message: string, args: unknown[]) => {
    let msg: string;
    let fields: Record<string, unknown>;
    const failed = reportedError(message);
    if (failed) {
      msg = `tracing: spans not exported: ${failed.message.slice(0, 300)}`;
      fields = {
        ...(otlpUrl ? { endpoint: otlpUrl } : {}),
        ...(typeof failed.code === 'string' && failed.code ? { code: failed.code } : {}),
        // A collector's answer to a refused export (its reason), as it gave it.
        ...(typeof failed.data === 'string' && failed.data ? { detail: failed.data.slice(0, 300) } : {}),
      };
    } else {
      const detail = args.map((a) => (a instanceof Error ? a.message : typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
      msg = `tracing: ${message}`;
      fields = detail ? { detail: detail.slice(0, 2000) } : {};
    }
    if (logger) write(logger, msg, fields);
    else if (early.length < EARLY_DIAGNOSTICS_KEPT) early.push({ msg, fields });
    else droppedEarly++;
  };
  const none = () => {};
  return {
    sink: { error: (m, ...a) => line(m, a), warn: (m, ...a) => line(m, a), info: none, debug: none, verbose: none },
    reportTo(to) {
      for (const { msg, fields } of early.splice(0)) write(to, msg, fields);
      if (droppedEarly > 0) to.warn(`tracing: ${droppedEarly} more SDK diagnostics before the log was ready were dropped`);
      droppedEarly = 0;
      logger = to;
    },
    logger: () => logger,
  };
}

export type TraceProtocol = 'http/protobuf' | 'http/json';

/** What the `OTEL_*` variables ask for: nothing, or these exporters. */
export type TracingSettings =
  | { enabled: false }
  | {
    enabled: true;
    exporters: ReadonlyArray<'otlp' | 'console'>;
    protocol: TraceProtocol;
    /** Where OTLP spans go; undefined: the exporter's default (`http://localhost:4318/v1/traces`). */
    url: string | undefined;
    serviceName: string;
  };

const truthy = (v: string | undefined) => v !== undefined && v.trim().toLowerCase() === 'true';
const set = (v: string | undefined) => v !== undefined && v.trim() !== '';

/**
 * Reads the variables: `OTEL_SDK_DISABLED=true` turns tracing off whatever
 * else is set; `OTEL_TRACES_EXPORTER` (`otlp`, `console`, `none`, or a comma
 * list) picks the exporters; without it, an OTLP endpoint
 * (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
 * turns the OTLP exporter on. `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` (or
 * `OTEL_EXPORTER_OTLP_PROTOCOL`) is `http/protobuf` (the default) or
 * `http/json`. `OTEL_SERVICE_NAME` defaults to `ats-<roles>`. A value this
 * cannot serve is ATS_ERR_CONFIG.
 */
export function tracingSettings(env: Readonly<Record<string, string | undefined>>, roles: readonly string[]): TracingSettings {
  if (truthy(env.OTEL_SDK_DISABLED)) return { enabled: false };
  let exporters: Array<'otlp' | 'console'>;
  if (set(env.OTEL_TRACES_EXPORTER)) {
    const names = env.OTEL_TRACES_EXPORTER!.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
    if (names.includes('none')) return { enabled: false };
    for (const n of names) {
      if (n !== 'otlp' && n !== 'console') {
        throw new AtsError('ATS_ERR_CONFIG', `OTEL_TRACES_EXPORTER: "${n}" is not an exporter this scheduler has (otlp, console, none)`);
      }
    }
    exporters = [...new Set(names as Array<'otlp' | 'console'>)];
  } else if (set(env.OTEL_EXPORTER_OTLP_ENDPOINT) || set(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)) {
    exporters = ['otlp'];
  } else {
    return { enabled: false };
  }
  if (exporters.length === 0) return { enabled: false };
  // The error names the variable the protocol came from: the traces one wins over the general one.
  const protocolVar = set(env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL) ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = env[protocolVar]?.trim().toLowerCase() || 'http/protobuf';
  if (exporters.includes('otlp') && protocol !== 'http/protobuf' && protocol !== 'http/json') {
    throw new AtsError('ATS_ERR_CONFIG', `${protocolVar}: "${protocol}" is not served (http/protobuf, http/json)`);
  }
  const serviceName = set(env.OTEL_SERVICE_NAME) ? env.OTEL_SERVICE_NAME!.trim() : `ats-${roles.join('-')}`;
  return { enabled: true, exporters, protocol: protocol as TraceProtocol, url: tracesUrl(env), serviceName };
}

/**
 * The traces URL: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as given, else
 * `OTEL_EXPORTER_OTLP_ENDPOINT` plus `v1/traces`. One that is not an
 * http(s) URL is ATS_ERR_CONFIG (the exporter would quietly send elsewhere).
 */
function tracesUrl(env: Readonly<Record<string, string | undefined>>): string | undefined {
  const check = (name: string, value: string): string => {
    let u: URL | null = null;
    try {
      u = new URL(value);
    } catch {
      // reported below
    }
    if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) {
      throw new AtsError('ATS_ERR_CONFIG', `${name}: "${value}" is not an http(s) URL`);
    }
    return value;
  };
  if (set(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)) return check('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT!.trim());
  if (!set(env.OTEL_EXPORTER_OTLP_ENDPOINT)) return undefined;
  const base = check('OTEL_EXPORTER_OTLP_ENDPOINT', env.OTEL_EXPORTER_OTLP_ENDPOINT!.trim());
  return `${base.endsWith('/') ? base : `${base}/`}v1/traces`;
}

/**
 * Starts the SDK when the variables ask for it (null otherwise): a tracer
 * provider registered globally (so a handler's `trace.getActiveSpan()` and
 * `tracer.startActiveSpan()` see the attempt's span), with the W3C Trace
 * Context propagator and a batching processor per exporter (`OTEL_BSP_*`).
 * The OTLP exporter gets its URL from `tracingSettings` and reads its other
 * `OTEL_EXPORTER_OTLP_*` settings (headers, timeout, compression) itself.
 */
export async function startTracing(
  env: Readonly<Record<string, string | undefined>>, roles: readonly string[], now: () => number = Date.now,
): Promise<Tracing | null> {
  const settings = tracingSettings(env, roles);
  if (!settings.enabled) return null;
  // Before anything of the SDK is built: it reports bad settings while the provider and its processors
  // are made, and a failed export through its global error handler; both write to `diag`.
  const diagnosed = diagnostics(settings.exporters.includes('otlp') ? (settings.url ?? DEFAULT_TRACES_URL) : null, now);
  diag.setLogger(diagnosed.sink, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
  // Loaded only when tracing is on: a process without it never loads the SDK.
  const [{ NodeTracerProvider }, base, { resourceFromAttributes, defaultResource, detectResources, envDetector }, { ATTR_SERVICE_NAME }] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/semantic-conventions'),
  ]);
  const processors: SpanProcessor[] = [];
  for (const name of settings.exporters) {
    if (name === 'console') {
      processors.push(new base.SimpleSpanProcessor(new base.ConsoleSpanExporter()));
    } else if (settings.protocol === 'http/json') {
      const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
      processors.push(new base.BatchSpanProcessor(new OTLPTraceExporter({ url: settings.url })));
    } else {
      const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-proto');
      processors.push(new base.BatchSpanProcessor(new OTLPTraceExporter({ url: settings.url })));
    }
  }
  // OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME (envDetector) win over the defaults.
  const resource = defaultResource()
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: settings.serviceName }))
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new NodeTracerProvider({ resource, spanProcessors: processors });
  provider.register();
  return {
    tracer: provider.getTracer(TRACER_NAME),
    reportTo(logger) {
      diagnosed.reportTo(logger);
    },
    async shutdown() {
      let timer: NodeJS.Timeout | undefined;
      const limit = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), FLUSH_LIMIT_MS);
      });
      const flushed = provider.shutdown();
      flushed.catch(() => {}); // a failure after the limit is nobody's to hear (a failure before it is thrown below)
      try {
        if ((await Promise.race([flushed, limit])) === 'late') {
          diagnosed.logger()?.warn(`tracing: the last spans were not sent within ${FLUSH_LIMIT_MS} ms of the shutdown; dropped`);
        }
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
