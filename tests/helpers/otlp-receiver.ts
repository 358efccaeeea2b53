/**
 * A tiny OTLP/HTTP trace receiver on 127.0.0.1 for tests: accepts
 * `POST /v1/traces` and keeps every request's content type and body. A JSON
 * body (`OTEL_EXPORTER_OTLP_PROTOCOL=http/json`) is decoded: every span with
 * its resource's `service.name`. A protobuf body is kept undecoded (and
 * answered with an empty response, which is a valid one). Another path is a 404.
 */
import { createServer, type IncomingMessage } from 'node:http';

export interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  /** Empty for a root span. */
  parentSpanId: string;
  name: string;
  /** OTLP's SpanKind number: 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  attributes: ReadonlyMap<string, string | number | boolean>;
  /** OTLP's status code: 0 unset, 1 ok, 2 error. */
  statusCode: number;
}

export interface OtlpReceiver {
  /** The endpoint to give as `OTEL_EXPORTER_OTLP_ENDPOINT`. */
  url: string;
  /** The spans of the JSON requests. */
  spans: ReceivedSpan[];
  /** Every export request, as received. */
  requests: Array<{ contentType: string; body: Buffer }>;
  /** JSON requests that were not OTLP JSON. */
  rejected: number;
  close(): Promise<void>;
}

type AnyValue = { stringValue?: string; intValue?: number | string; boolValue?: boolean; doubleValue?: number };
type KeyValue = { key: string; value?: AnyValue };
interface ExportRequest {
  resourceSpans?: Array<{
    resource?: { attributes?: KeyValue[] };
    scopeSpans?: Array<{
      spans?: Array<{
        traceId?: string; spanId?: string; parentSpanId?: string; name?: string; kind?: number;
        attributes?: KeyValue[]; status?: { code?: number };
      }>;
    }>;
  }>;
}

/** OTLP/JSON ids are hex; a base64 one (as protobuf's JSON mapping would write) is turned into hex. */
function hexId(id: string | undefined): string {
  if (!id) return '';
  if (/^[0-9a-f]+$/i.test(id) && (id.length === 32 || id.length === 16)) return id.toLowerCase();
  return Buffer.from(id, 'base64').toString('hex');
}

function valueOf(v: AnyValue | undefined): string | number | boolean {
  if (!v) return '';
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.doubleValue !== undefined) return v.doubleValue;
  return '';
}

const attributesOf = (list: KeyValue[] | undefined) => new Map((list ?? []).map((kv) => [kv.key, valueOf(kv.value)] as const));

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const receiver: OtlpReceiver = { url: '', spans: [], requests: [], rejected: 0, close: async () => undefined };
  const server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      const contentType = String(req.headers['content-type'] ?? '');
      receiver.requests.push({ contentType, body });
      if (!contentType.startsWith('application/json')) {
        res.writeHead(200, { 'content-type': contentType }).end();
        return;
      }
      let parsed: ExportRequest;
      try {
        parsed = JSON.parse(body.toString('utf8')) as ExportRequest;
      } catch {
        receiver.rejected++;
        res.writeHead(400).end();
        return;
      }
      for (const rs of parsed.resourceSpans ?? []) {
        const service = String(attributesOf(rs.resource?.attributes).get('service.name') ?? '');
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) {
            receiver.spans.push({
              service, traceId: hexId(s.traceId), spanId: hexId(s.spanId), parentSpanId: hexId(s.parentSpanId),
              name: s.name ?? '', kind: s.kind ?? 0, attributes: attributesOf(s.attributes), statusCode: s.status?.code ?? 0,
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    })().catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  receiver.url = `http://127.0.0.1:${port}`;
  receiver.close = () => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  return receiver;
}
