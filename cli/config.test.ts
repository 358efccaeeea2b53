import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';
import { describe, it } from 'node:test';
import { configTable } from '../scripts/config-table.js';
import { checkEnvNames, compileConfig, MYSQL_URL_PARAMETERS, rawFromArgs, rawFromEnv, SETTINGS } from './config.js';
import { AtsError } from '../engine/errors.js';
import { MAX_BODY_LIMIT_BYTES } from '../server/deps.js';

const rejects = (raw: Parameters<typeof compileConfig>[0], pattern: RegExp) =>
  assert.throws(() => compileConfig(raw), (e: unknown) => e instanceof AtsError && e.code === 'ATS_ERR_CONFIG' && pattern.test(e.message));

describe('config', () => {
  it('defaults: all roles, embedded store and log, port 3000, frozen', () => {
    const c = compileConfig({});
    assert.deepEqual(c.roles, ['api', 'relay', 'worker', 'timers']);
    assert.equal(c.mysqlUrl, null);
    assert.equal(c.kafkaBrokers, null);
    assert.equal(c.port, 3000);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.worker));
  });

  it('environment then flags, flags win', () => {
    const raw = { ...rawFromEnv({ PORT: '4000', ATS_WORKER_CONCURRENCY: '7' }), ...rawFromArgs(['--port', '5000']) };
    const c = compileConfig(raw);
    assert.equal(c.port, 5000);
    assert.equal(c.worker.concurrency, 7);
    assert.equal(compileConfig(rawFromArgs(['--port=6000'])).port, 6000);
  });

  it('names the setting in every error', () => {
    rejects({ mysqlUrl: 'not-a-url' }, /MYSQL_URL.*not a URL/);
    rejects({ mysqlUrl: 'postgres://x@h/db' }, /MYSQL_URL.*mysql:\/\//);
    rejects({ mysqlUrl: 'mysql://root@127.0.0.1:3306' }, /MYSQL_URL.*database/);
    rejects({ kafkaBrokers: 'nohostport' }, /KAFKA_BROKERS.*host:port/);
    rejects({ port: 'eighty' }, /PORT.*integer/);
    rejects({ roles: 'api,chef' }, /ATS_ROLES.*unknown role "chef"/);
    rejects({ roles: 'worker' }, /needs KAFKA_BROKERS/);
    rejects({ roles: 'worker', kafkaBrokers: 'k:9092' }, /needs MYSQL_URL/);
    rejects({ leaseMs: 5000, heartbeatMs: 5000 }, /ATS_HEARTBEAT_MS.*below the lease/);
    rejects({ publishedTimeoutMs: 1000, relayPublishedDelayMs: 501 }, /ATS_RELAY_PUBLISHED_DELAY_MS.*half the published timeout/);
    rejects({ eventsFormat: 'packed' }, /ATS_EVENTS_FORMAT.*unknown format "packed" \(formats: batch, single\)/);
    rejects({ advisor: 'maybe' }, /ATS_ADVISOR.*unknown mode "maybe" \(modes: off, advise, enforce\)/);
    rejects({ logFormat: 'xml' }, /LOG_FORMAT.*unknown format "xml"/);
    rejects({ logLevel: 'INFO' }, /^LOG_LEVEL \(--log-level\): unknown level "INFO" \(levels: debug, info, warn, error, silent\)$/);
    assert.throws(() => rawFromArgs(['--nope', '1']), /unknown option --nope/);
    assert.throws(() => rawFromArgs(['--port']), /needs a value/);
  });

  it('transitions go to ats.events packed unless ATS_EVENTS_FORMAT=single', () => {
    assert.equal(compileConfig({}).eventsFormat, 'batch');
    assert.equal(compileConfig(rawFromArgs(['--events-format', 'single'])).eventsFormat, 'single');
  });

  it('retention ages are durations: 7d, 12h, 30m, 60s, 500ms or plain ms', () => {
    assert.deepEqual(compileConfig({}).retention, { doneMs: 7 * 86_400_000, deadMs: 30 * 86_400_000, auditMs: 90 * 86_400_000, batchSize: 500, pollMs: 60_000 });
    const ms = (v: string) => compileConfig({ retentionDone: v }).retention.doneMs;
    assert.equal(ms('12h'), 12 * 3_600_000);
    assert.equal(ms('30m'), 1_800_000);
    assert.equal(ms('60s'), 60_000);
    assert.equal(ms('500ms'), 500);
    assert.equal(ms('2500'), 2500);
    assert.equal(ms('0'), 0);
    assert.equal(compileConfig(rawFromEnv({ ATS_RETENTION_DEAD: '90d' })).retention.deadMs, 90 * 86_400_000);
    for (const bad of ['7 days', '-1d', '1.5h', 'd', '7w', '1e3', '36501d']) rejects({ retentionDone: bad }, /ATS_RETENTION_DONE.*duration/);
    rejects({ retentionDead: 'soon' }, /ATS_RETENTION_DEAD \(--retention-dead\).*got "soon"/);
    assert.equal(compileConfig(rawFromEnv({ ATS_RETENTION_AUDIT: '365d' })).retention.auditMs, 365 * 86_400_000);
    rejects({ retentionAudit: 'never' }, /ATS_RETENTION_AUDIT \(--retention-audit\).*got "never"/);
  });

  it('HTTP timeouts: defaults, environment and flags, validated', () => {
    const d = compileConfig({});
    assert.deepEqual(
      { h: d.api.headersTimeoutMs, r: d.api.requestTimeoutMs, b: d.api.bodyTimeoutMs, k: d.api.keepAliveTimeoutMs },
      { h: 10_000, r: 30_000, b: 10_000, k: 5_000 },
    );
    const c = compileConfig({
      ...rawFromEnv({ ATS_HTTP_HEADERS_TIMEOUT_MS: '2000', ATS_HTTP_BODY_TIMEOUT_MS: '3000' }),
      ...rawFromArgs(['--http-request-timeout-ms', '4000', '--http-keep-alive-timeout-ms=1500']),
    });
    assert.deepEqual(
      { h: c.api.headersTimeoutMs, r: c.api.requestTimeoutMs, b: c.api.bodyTimeoutMs, k: c.api.keepAliveTimeoutMs },
      { h: 2000, r: 4000, b: 3000, k: 1500 },
    );
    rejects({ httpHeadersTimeoutMs: '0' }, /ATS_HTTP_HEADERS_TIMEOUT_MS.*integer/);
    rejects({ httpBodyTimeoutMs: 'soon' }, /ATS_HTTP_BODY_TIMEOUT_MS.*integer/);
    rejects({ httpHeadersTimeoutMs: 5000, httpRequestTimeoutMs: 4000 }, /ATS_HTTP_HEADERS_TIMEOUT_MS.*request timeout/);
  });

  it('ATS_HTTP_MAX_CONNECTIONS: 10,000 by default, at least 64', () => {
    assert.equal(compileConfig({}).api.maxConnections, 10_000);
    assert.equal(compileConfig(rawFromEnv({ ATS_HTTP_MAX_CONNECTIONS: '500' })).api.maxConnections, 500);
    assert.equal(compileConfig(rawFromArgs(['--http-max-connections', '64'])).api.maxConnections, 64);
    rejects({ httpMaxConnections: '63' }, /ATS_HTTP_MAX_CONNECTIONS.*integer/);
    rejects({ httpMaxConnections: 'lots' }, /ATS_HTTP_MAX_CONNECTIONS.*integer/);
  });

  it('ATS_HTTP_MAX_CONNECTIONS unset, under a low open-file limit: half the limit; set, kept whatever the limit', () => {
    const low = { hostname: 'h', pid: 1, openFileLimit: 1024 };
    const lowered = compileConfig({}, low);
    assert.equal(lowered.api.maxConnections, 512);
    assert.equal(lowered.api.maxConnectionsSet, false);
    assert.equal(lowered.openFileLimit, 1024);
    assert.equal(compileConfig(rawFromEnv({ ATS_HTTP_MAX_CONNECTIONS: ' ' }), low).api.maxConnections, 512, 'blank is unset');
    assert.equal(compileConfig({}, { hostname: 'h', pid: 1, openFileLimit: 1_048_576 }).api.maxConnections, 10_000, 'a large limit keeps the default');
    assert.equal(compileConfig({}, { hostname: 'h', pid: 1, openFileLimit: null }).api.maxConnections, 10_000, 'an unknown one too');
    assert.equal(compileConfig({}).openFileLimit, null, 'unknown unless given');
    for (const value of ['5000', '300', '10000']) {
      const c = compileConfig(rawFromEnv({ ATS_HTTP_MAX_CONNECTIONS: value }), low);
      assert.equal(c.api.maxConnections, Number(value), 'the operator\'s value, above the limit or not');
      assert.equal(c.api.maxConnectionsSet, true);
    }
    rejects({ httpMaxConnections: '63' }, /ATS_HTTP_MAX_CONNECTIONS.*integer/);
  });

  it('--queues / ATS_QUEUES: empty serves every queue; a list is trimmed and deduplicated; a bad name is refused naming the setting', () => {
    assert.deepEqual(compileConfig({}).worker.queues, [], 'every queue by default');
    assert.deepEqual(compileConfig({ queues: '  ' }).worker.queues, [], 'blank is every queue too');
    assert.deepEqual(compileConfig(rawFromArgs(['--queues', 'email, reports'])).worker.queues, ['email', 'reports']);
    assert.deepEqual(compileConfig(rawFromEnv({ ATS_QUEUES: 'email,reports' })).worker.queues, ['email', 'reports']);
    assert.deepEqual(compileConfig(rawFromArgs(['--queues=reports,email,reports, email'])).worker.queues, ['reports', 'email'], 'duplicates dropped, first order kept');
    assert.deepEqual(compileConfig({ queues: 'mail.v2:eu_1,a-b' }).worker.queues, ['mail.v2:eu_1', 'a-b'], 'every character a queue name may hold');
    const env = { ...rawFromEnv({ ATS_QUEUES: 'email' }), ...rawFromArgs(['--queues', 'reports']) };
    assert.deepEqual(compileConfig(env).worker.queues, ['reports'], 'the flag wins over the environment');
    assert.ok(Object.isFrozen(compileConfig({ queues: 'a' }).worker.queues));
    assert.deepEqual(compileConfig({ queues: 'q'.repeat(200) }).worker.queues, ['q'.repeat(200)], '200 characters is the longest name');

    rejects({ queues: 'a,,b' }, /^ATS_QUEUES \(--queues\): an empty queue name/);
    rejects({ queues: 'a,' }, /^ATS_QUEUES \(--queues\): an empty queue name/);
    rejects({ queues: ',a' }, /^ATS_QUEUES \(--queues\): an empty queue name/);
    rejects({ queues: 'email,bad queue' }, /^ATS_QUEUES \(--queues\): "bad queue" is not a queue name/);
    rejects({ queues: 'a/b' }, /^ATS_QUEUES \(--queues\): "a\/b" is not a queue name/);
    rejects({ queues: 'ok,caf\u00e9' }, /^ATS_QUEUES \(--queues\): "caf\u00e9" is not a queue name/);
    rejects({ queues: 'q'.repeat(201) }, /^ATS_QUEUES \(--queues\): "q{60}" is not a queue name \(1 to 200 /);
    // A huge value is refused without echoing all of it back.
    const huge = 'x'.repeat(10 * 1024);
    assert.throws(() => compileConfig({ queues: huge }), (e: unknown) => e instanceof AtsError && e.code === 'ATS_ERR_CONFIG'
      && /^ATS_QUEUES \(--queues\): /.test(e.message) && e.message.length < 300);
    rejects(rawFromEnv({ ATS_QUEUES: 'a, ,b' }), /ATS_QUEUES.*empty queue name/);
  });

  it('an integer setting is digits: 1e3, 0x10, 0b1, 1.0 and 4000abc are refused (exit 2), not read as numbers', () => {
    for (const v of ['1e3', '0x10', '0b1', '1.0', '4000abc', '+80']) {
      assert.throws(() => compileConfig(rawFromEnv({ PORT: v })), (e: unknown) => e instanceof AtsError && e.code === 'ATS_ERR_CONFIG' && e.message.includes(`"${v}"`), v);
    }
    assert.equal(compileConfig(rawFromEnv({ PORT: '8080' })).port, 8080);
  });

  it('a topic prefix is what Kafka takes in a topic name: up to 100 of A-Z a-z 0-9 . _ -', () => {
    assert.equal(compileConfig(rawFromEnv({ ATS_TOPIC_PREFIX: 'staging_2.' })).topicPrefix, 'staging_2.');
    for (const v of ['my prefix.', 'a/b.', 'é.', 'x'.repeat(101)]) {
      assert.throws(() => compileConfig(rawFromEnv({ ATS_TOPIC_PREFIX: v })), (e: unknown) => e instanceof AtsError && e.code === 'ATS_ERR_CONFIG' && e.message.includes('ATS_TOPIC_PREFIX'), v);
    }
  });

  it('a value of only spaces is unset: the default, never 0 (no rate limit, a random port) or a blank name', () => {
    const d = compileConfig({});
    const c = compileConfig(rawFromEnv({
      PORT: ' ', ATS_RATE_LIMIT: ' ', ATS_SHUTDOWN_GRACE_MS: '\t', ATS_ADVISOR_HISTORY: ' ', HOST: ' ', ATS_WORKER_GROUP: ' ',
      ATS_DEFAULT_QUEUE: '  ', ATS_DATA_DIR: ' ', ATS_WORKER_ID: ' ',
    }), { hostname: 'h', pid: 7 });
    assert.equal(c.port, 3000);
    assert.equal(c.security.rateLimitPerMinute, 6000);
    assert.equal(c.worker.shutdownGraceMs, d.worker.shutdownGraceMs);
    assert.equal(c.advisor.historyEvents, d.advisor.historyEvents);
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.worker.groupId, 'ats-workers');
    assert.equal(c.defaults.queue, 'default');
    assert.equal(c.dataDir, './data');
    assert.equal(c.worker.workerId, 'h-7');
    assert.equal(compileConfig(rawFromArgs(['--port', ' 4000 '])).port, 4000, 'a value around spaces is the value');
    assert.equal(compileConfig(rawFromArgs(['--rate-limit=0'])).security.rateLimitPerMinute, 0, 'an explicit 0 is still no limit');
  });

  it('a flag given an empty value is an error, not the default; only a setting whose default is empty takes one, overriding its variable', () => {
    for (const args of [['--port='], ['--port', ''], ['--port', ' '], ['--role='], ['--data-dir='], ['--rate-limit='], ['--log-level', '\t']]) {
      assert.throws(() => rawFromArgs(args), (e: unknown) => e instanceof AtsError && e.code === 'ATS_ERR_CONFIG'
        && new RegExp(`^option ${args[0]!.replace(/=$/, '')} needs a value, got an empty one`).test(e.message), JSON.stringify(args));
    }
    const env = rawFromEnv({ MYSQL_URL: 'mysql://root@127.0.0.1:3306/ats', ATS_METRICS_PORT: '9464', KAFKA_BROKERS: 'k:9092', ATS_QUEUES: 'email' });
    const c = compileConfig({ ...env, ...rawFromArgs(['--mysql-url=', '--metrics-port', '', '--kafka-brokers=', '--queues=']) });
    assert.deepEqual([c.mysqlUrl, c.metricsPort, c.kafkaBrokers, c.worker.queues], [null, null, null, []]);
  });

  it('ATS_DEFAULT_QUEUE must be a queue name the API takes', () => {
    assert.equal(compileConfig(rawFromEnv({ ATS_DEFAULT_QUEUE: 'mail.v2:eu_1' })).defaults.queue, 'mail.v2:eu_1');
    rejects(rawFromEnv({ ATS_DEFAULT_QUEUE: 'no such/queue!' }), /^ATS_DEFAULT_QUEUE \(--default-queue\): "no such\/queue!" is not a queue name/);
    rejects({ defaultQueue: 'q'.repeat(201) }, /^ATS_DEFAULT_QUEUE \(--default-queue\): "q{60}" is not a queue name \(1 to 200 /);
  });

  it('a Kafka broker\'s port is from 1 to 65535 (else a bad setting, not an unreachable Kafka)', () => {
    rejects({ kafkaBrokers: '127.0.0.1:99999' }, /^KAFKA_BROKERS \(--kafka-brokers\): "127\.0\.0\.1:99999" is not host:port \(a port from 1 to 65535\)/);
    rejects({ kafkaBrokers: 'a:9092,b:0' }, /^KAFKA_BROKERS \(--kafka-brokers\): "b:0" is not host:port/);
    assert.deepEqual(compileConfig({ kafkaBrokers: 'a:1,b:65535' }).kafkaBrokers, ['a:1', 'b:65535']);
  });

  it('ATS_KAFKA_REPLICATION_FACTOR: unset is the broker\'s default (null), else an integer from 1 to 100', () => {
    assert.equal(compileConfig({}).kafkaReplicationFactor, null);
    assert.equal(compileConfig(rawFromEnv({ ATS_KAFKA_REPLICATION_FACTOR: ' ' })).kafkaReplicationFactor, null);
    assert.equal(compileConfig(rawFromEnv({ ATS_KAFKA_REPLICATION_FACTOR: '3' })).kafkaReplicationFactor, 3);
    assert.equal(compileConfig(rawFromArgs(['--kafka-replication-factor', '2'])).kafkaReplicationFactor, 2);
    rejects({ kafkaReplicationFactor: '0' }, /^ATS_KAFKA_REPLICATION_FACTOR \(--kafka-replication-factor\): must be an integer from 1 to 100, got "0"/);
    rejects({ kafkaReplicationFactor: 'all' }, /^ATS_KAFKA_REPLICATION_FACTOR .*integer/);
  });

  it('KAFKA_BROKERS of only commas names no broker: a bad setting naming it, not the embedded log nor a Kafka log with none', () => {
    rejects({ kafkaBrokers: ',' }, /^KAFKA_BROKERS \(--kafka-brokers\): names no broker/);
    rejects({ kafkaBrokers: ' , ,' }, /^KAFKA_BROKERS \(--kafka-brokers\): names no broker/);
    // With split roles it would also pass the "needs KAFKA_BROKERS" check, an empty list being a list.
    rejects({ roles: 'worker', mysqlUrl: 'mysql://root@127.0.0.1:3306/ats', kafkaBrokers: ',' }, /^KAFKA_BROKERS \(--kafka-brokers\): names no broker/);
    assert.deepEqual(compileConfig({ kafkaBrokers: 'a:1,,b:2' }).kafkaBrokers, ['a:1', 'b:2']);
  });

  it('ATS_METRICS_PORT is not the api role\'s PORT (both would bind it: the start would fail on EADDRINUSE naming neither)', () => {
    rejects({ port: '9100', metricsPort: '9100' }, /^ATS_METRICS_PORT \(--metrics-port\): 9100 is PORT's too \(the api role serves \/metrics there already\)/);
    assert.equal(compileConfig({ port: '0', metricsPort: '0' }).metricsPort, 0, 'two random ports');
    assert.equal(compileConfig({ port: '9100', metricsPort: '9101' }).metricsPort, 9101);
    const noApi = compileConfig({ roles: 'worker', mysqlUrl: 'mysql://root@127.0.0.1:3306/ats', kafkaBrokers: 'k:9092', port: '9100', metricsPort: '9100' });
    assert.equal(noApi.metricsPort, 9100, 'without the api role, PORT is bound by nothing');
  });

  it('HOST is a host name or address to listen on, without a port or scheme (else exit 2 naming it, not a start that fails on getaddrinfo)', () => {
    for (const h of ['127.0.0.1', '0.0.0.0', '::', '::1', 'localhost', 'api.internal', 'my_host-1']) assert.equal(compileConfig({ host: h }).host, h);
    rejects({ host: 'localhost:3000' }, /^HOST \(--host\): "localhost:3000" is not a host name or address to listen on \(like 127\.0\.0\.1, 0\.0\.0\.0, :: or localhost; no port: PORT sets it\)/);
    rejects({ host: 'http://0.0.0.0' }, /^HOST \(--host\): "http:\/\/0\.0\.0\.0" is not a host name or address/);
    assert.equal(compileConfig({ host: '[::1]' }).host, '::1', 'an IPv6 address in brackets, as in a URL: listen takes it bare');
    rejects({ host: '[::1]:3000' }, /^HOST \(--host\): "\[::1\]:3000" is not a host name or address/);
    rejects({ host: '[localhost]' }, /^HOST \(--host\): "\[localhost\]" is not a host name or address/);
    rejects({ host: 'a b' }, /^HOST \(--host\)/);
  });

  it('ATS_WORKER_ID fits the workers.id column (255 characters) and holds no control character', () => {
    assert.equal(compileConfig({ workerId: 'w'.repeat(255) }).worker.workerId, 'w'.repeat(255));
    assert.equal(compileConfig({ workerId: 'é'.repeat(255) }).worker.workerId.length, 255, 'characters, not bytes');
    assert.equal(compileConfig({}, { hostname: 'box', pid: 7 }).worker.workerId, 'box-7');
    rejects({ workerId: 'w'.repeat(256) }, /^ATS_WORKER_ID \(--worker-id\): "w{60}…" is longer than 255 characters/);
    rejects({ workerId: 'a\nb' }, /^ATS_WORKER_ID \(--worker-id\): "a\\nb" holds a control character/);
  });

  it('ATS_ALLOWED_HOSTS takes host names and addresses, port optional; a URL or a pattern is refused', () => {
    const hosts = compileConfig({ allowedHosts: 'ops.example.com, localhost:3000, [::1]:3000, ::1, 10.0.0.5' }).security.allowedHosts;
    assert.deepEqual(hosts, ['ops.example.com', 'localhost:3000', '[::1]:3000', '::1', '10.0.0.5']);
    rejects({ allowedHosts: 'http://localhost' }, /^ATS_ALLOWED_HOSTS \(--allowed-hosts\): "http:\/\/localhost" is not a host name or address/);
    rejects({ allowedHosts: 'localhost,https://ops.example.com' }, /^ATS_ALLOWED_HOSTS \(--allowed-hosts\): "https:\/\/ops\.example\.com"/);
    rejects({ allowedHosts: '*.example.com' }, /^ATS_ALLOWED_HOSTS/);
  });

  it('ATS_TRUST_PROXY takes addresses and CIDRs (IPv4, IPv6) and the range names, each of which fastify takes; empty: none', async () => {
    assert.deepEqual(compileConfig({}).security.trustProxy, []);
    const listed = compileConfig(rawFromArgs(['--trust-proxy', '10.0.0.5, 10.0.0.0/24,fd00::/64, ::1, ::ffff:10.1.0.0/112, 192.168.1.1/32, loopback,uniquelocal,linklocal, 10.0.0.5'])).security.trustProxy;
    assert.deepEqual(listed, ['10.0.0.5', '10.0.0.0/24', 'fd00::/64', '::1', '::ffff:10.1.0.0/112', '192.168.1.1/32', 'loopback', 'uniquelocal', 'linklocal']);
    // What the config lets through never fails the app's construction (fastify compiles it with proxy-addr, which throws).
    const app = Fastify({ trustProxy: [...listed] });
    await app.close();
  });

  it('ATS_TRUST_PROXY never trusts every peer: true, *, a hop count and a /0 are refused, saying why; so is what is no address', () => {
    for (const v of ['true', 'TRUE', '*', 'all', '1', '2', '0.0.0.0/0', '::/0', '10.0.0.5,true', '0.0.0.0/1,128.0.0.0/1', '::/1', '8000::/15', '10.0.0.0/7']) {
      rejects(rawFromEnv({ ATS_TRUST_PROXY: v }), /^ATS_TRUST_PROXY \(--trust-proxy\): ".*" would believe X-Forwarded-For from every peer, so any client that reaches the server directly could choose the address it is counted by/);
    }
    // And what fastify's proxy-addr would refuse at the app's construction, or never match: a zone id, a mapped prefix under 96.
    for (const v of ['proxy.example.com', '10.0.0.256', '10.0.0.0/33', 'fd00::/129', '10.0.0.0/24/8', '10.0.0.0/255.255.255.0', '[::1]', '10.0.0.5:80', 'Loopback', '10.0.0.0/',
      'fe80::1%eth0.10', 'fe80::1%br-abc', '::ffff:10.0.0.0/88']) {
      rejects({ trustProxy: v }, new RegExp(`^ATS_TRUST_PROXY \\(--trust-proxy\\): "${v.replace(/[.*[\]/]/g, '\\$&')}" is not an address or CIDR`));
    }
  });

  it('the batch body limit is at least the body limit: a batch of one job the API takes alone is never refused', () => {
    const api = compileConfig({ bodyLimitBytes: '65536', batchBodyLimitBytes: '65536' }).api;
    assert.deepEqual([api.bodyLimitBytes, api.batchBodyLimitBytes], [65_536, 65_536]);
    rejects({ bodyLimitBytes: '1048576', batchBodyLimitBytes: '65536' }, /^ATS_BATCH_BODY_LIMIT_BYTES \(--batch-body-limit-bytes\): must be at least ATS_BODY_LIMIT_BYTES \(1048576 bytes\)/);
  });

  it('the body limit is at most what one MariaDB statement holds of a payload (4 MiB)', () => {
    assert.equal(compileConfig({ bodyLimitBytes: String(MAX_BODY_LIMIT_BYTES) }).api.bodyLimitBytes, 4 * 1024 * 1024);
    rejects({ bodyLimitBytes: String(MAX_BODY_LIMIT_BYTES + 1) }, /^ATS_BODY_LIMIT_BYTES \(--body-limit-bytes\): must be an integer from 1024 to 4194304/);
  });

  it('MYSQL_URL: what the driver would misread is refused naming it, not met at connect (exit 1) or ignored', () => {
    // The driver percent-decodes the user, password and database: a stray % threw "URI malformed" at connect.
    rejects({ mysqlUrl: 'mysql://root:p%zz@127.0.0.1:3306/ats' }, /^MYSQL_URL \(--mysql-url\): .*percent-encoding.*%25/);
    rejects({ mysqlUrl: 'mysql://root@127.0.0.1:3306/a%zzb' }, /^MYSQL_URL \(--mysql-url\): .*percent-encoding/);
    // Port 0 was read as the default port, 3306, while every message said :0.
    rejects({ mysqlUrl: 'mysql://root@127.0.0.1:0/ats' }, /^MYSQL_URL \(--mysql-url\): .*port from 1 to 65535/);
    rejects({ mysqlUrl: 'mysql:///ats' }, /^MYSQL_URL \(--mysql-url\): must name a host/);
    // A misspelt parameter was a console line of the driver's and the connection went on without it (no TLS for `sll`).
    rejects({ mysqlUrl: 'mysql://root@127.0.0.1:3306/ats?sll=true' }, /^MYSQL_URL \(--mysql-url\): unknown query parameter "sll" \(parameters: ssl, /);
    // One the store sets itself was ignored (connectTimeout) or changed what rows look like (bigNumberStrings).
    rejects({ mysqlUrl: 'mysql://root@127.0.0.1:3306/ats?bigNumberStrings=true' }, /^MYSQL_URL \(--mysql-url\): unknown query parameter "bigNumberStrings"/);
    rejects({ mysqlUrl: 'mysql://root@127.0.0.1:3306/ats?connectTimeout=1' }, /^MYSQL_URL \(--mysql-url\): unknown query parameter "connectTimeout"/);
    // A credential in the query would be shown as it is wherever the URL is named (only the password is masked).
    rejects({ mysqlUrl: 'mysql://root:pw@127.0.0.1:3306/ats?password2=second' }, /^MYSQL_URL \(--mysql-url\): unknown query parameter "password2"/);
    // A value the driver would ignore (a console line of its own) or read as nothing.
    rejects({ mysqlUrl: 'mysql://root@127.0.0.1:3306/ats?timezone=bogus' }, /^MYSQL_URL \(--mysql-url\): query parameter timezone must be local, Z or \+HH:MM/);
    rejects({ mysqlUrl: 'mysql://root@127.0.0.1:3306/ats?maxIdle=abc' }, /^MYSQL_URL \(--mysql-url\): query parameter maxIdle must be an integer from 0/);
    rejects({ mysqlUrl: 'mysql://root@127.0.0.1:3306/ats?idleTimeout=-1' }, /^MYSQL_URL \(--mysql-url\): query parameter idleTimeout must be an integer from 0/);
    rejects({ mysqlUrl: 'mysql://root@127.0.0.1:3306/ats?compress=yes' }, /^MYSQL_URL \(--mysql-url\): query parameter compress must be true or false/);
    rejects({ mysqlUrl: 'mysql://root@127.0.0.1:3306/ats?ssl=a&ssl=b' }, /^MYSQL_URL \(--mysql-url\): query parameter ssl is given twice/);
    for (const q of ['timezone=Z', 'timezone=%2B01:00', 'timezone=local', 'maxIdle=5', 'compress=true', 'waitForConnections=false']) {
      assert.ok(compileConfig({ mysqlUrl: `mysql://root@db/ats?${q}` }).mysqlUrl, q);
    }
    const ok = 'mysql://u:p%40ss@[::1]:3307/ats?ssl=%7B%22rejectUnauthorized%22%3Atrue%7D&timezone=Z';
    assert.equal(compileConfig({ mysqlUrl: ok }).mysqlUrl, ok);
    assert.equal(compileConfig({ mysqlUrl: 'mysql://root@db/ats' }).mysqlUrl, 'mysql://root@db/ats');
    for (const name of MYSQL_URL_PARAMETERS) assert.ok(SETTINGS.mysqlUrl.doc.includes(` ${name}`), `the settings table names ${name}`);
  });

  it('an ATS_ variable that is a setting misspelt stops the start naming the setting; the client\'s own pass', () => {
    const typo = (env: Record<string, string>, pattern: RegExp) =>
      assert.throws(() => checkEnvNames(env), (e: unknown) => e instanceof AtsError && e.code === 'ATS_ERR_CONFIG' && pattern.test(e.message));
    typo({ ATS_WORKER_CONCURENCY: '20' }, /^ATS_WORKER_CONCURENCY is not a setting: did you mean ATS_WORKER_CONCURRENCY \(--concurrency\)\?/);
    typo({ ATS_LEASEMS: '9000' }, /did you mean ATS_LEASE_MS /);
    typo({ ats_lease_ms: '9000' }, /^ats_lease_ms is not a setting: did you mean ATS_LEASE_MS /);
    typo({ ATS_ROLE: 'worker' }, /did you mean ATS_ROLES /);
    typo({ ATS_PORT: '3001' }, /^ATS_PORT is not a setting: did you mean PORT \(--port\)\?/);
    typo({ ATS_MYSQL_URL: 'mysql://root@db/ats' }, /did you mean MYSQL_URL /);
    assert.deepEqual(checkEnvNames({ ATS_URL: 'http://ats.invalid', ATS_API_KEY: 'k', ATS_LEASE_MS: '9000', PORT: '1', HOME: '/' }), []);
    // Far from every setting: not refused (a test's or another tool's), but named, to be said at the start.
    assert.deepEqual(checkEnvNames({ ATS_ALLOW_SKIP: '1', ATS_CONCURRENCY: '5' }), ['ATS_ALLOW_SKIP', 'ATS_CONCURRENCY']);
  });

  it('split roles run on MySQL and Kafka', () => {
    const c = compileConfig({ roles: 'worker', mysqlUrl: 'mysql://root@127.0.0.1:3306/ats', kafkaBrokers: 'a:9092, b:9093' });
    assert.deepEqual(c.roles, ['worker']);
    assert.deepEqual(c.kafkaBrokers, ['a:9092', 'b:9093']);
  });

  it('the README documents every setting, as generated from SETTINGS', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    assert.ok(readme.includes(configTable()), 'README.md config table is stale: run `node --import tsx scripts/config-table.ts`');
    for (const s of Object.values(SETTINGS)) assert.ok(readme.includes(`\`${s.env}\``), s.env);
  });
});
