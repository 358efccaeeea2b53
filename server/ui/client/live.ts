/**
 * Keeps the page live. Prefers the WebSocket stream (`/v1/stream`, see
 * README.md, "The stream"): stats every second and every transition as it happens. Whenever
 * the stream is not delivering (not deployed, not yet connected, dropped), it
 * polls `GET /v1/stats` every second instead and keeps trying to reconnect,
 * backing off, so the counts never freeze.
 */
import type { Api, StateCounts } from './api.js';
import type { StreamEventMessage } from '../../stream/protocol.js';

/** A transition as the stream sends it (`kind: "event"`). */
export type StreamEvent = StreamEventMessage;

/** `stream`: counts and transitions pushed; `polling`: counts only; `offline`: the server does not answer. */
export type LiveMode = 'stream' | 'polling' | 'offline';

export interface LiveHandlers {
  onStats(byState: StateCounts): void;
  onEvent(event: StreamEvent): void;
  onMode(mode: LiveMode): void;
}

export interface LiveOptions {
  /** @defaultValue 1000 */
  pollMs?: number;
  /** Reconnect delays double from `min` up to `max`. @defaultValue 2000 and 30000 */
  reconnectMs?: { min: number; max: number };
}

export interface Live {
  stop(): void;
}

const streamUrl = () => `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/stream`;

export function startLive(api: Api, on: LiveHandlers, opts: LiveOptions = {}): Live {
  const pollMs = opts.pollMs ?? 1000;
  const { min, max } = opts.reconnectMs ?? { min: 2000, max: 30_000 };
  let ws: WebSocket | null = null;
  let streaming = false;
  let stopped = false;
  let pollTimer: number | undefined;
  let reconnectTimer: number | undefined;
  let reconnectDelay = min;

  const poll = async () => {
    try {
      const stats = await api.stats();
      if (streaming || stopped) return; // the stream took over while this was in flight
      on.onStats(stats.byState);
      on.onMode('polling');
    } catch {
      if (!streaming && !stopped) on.onMode('offline');
    }
  };
  const startPolling = () => {
    if (pollTimer !== undefined || stopped) return;
    void poll();
    pollTimer = window.setInterval(() => void poll(), pollMs);
  };
  const stopPolling = () => {
    window.clearInterval(pollTimer);
    pollTimer = undefined;
  };

  const onMessage = (raw: unknown) => {
    let msg: { kind?: string; byState?: StateCounts; message?: string };
    try {
      msg = JSON.parse(String(raw)) as typeof msg;
    } catch {
      return;
    }
    if (msg.kind === 'stats' && msg.byState) {
      if (!streaming) {
        // Only a stats message proves the stream works end to end: stop polling then, not on open.
        streaming = true;
        reconnectDelay = min;
        stopPolling();
        on.onMode('stream');
      }
      on.onStats(msg.byState);
    } else if (msg.kind === 'event') {
      on.onEvent(msg as unknown as StreamEvent);
    } else if (msg.kind === 'error') {
      console.warn('stream:', msg.message);
    }
  };

  const onClosed = () => {
    ws = null;
    streaming = false;
    if (stopped) return;
    startPolling();
    reconnectTimer = window.setTimeout(connect, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, max);
  };

  function connect() {
    try {
      ws = new WebSocket(streamUrl());
    } catch {
      onClosed();
      return;
    }
    const socket = ws;
    socket.onopen = () => {
      socket.send(JSON.stringify({ op: 'stats', everyMs: pollMs }));
      socket.send(JSON.stringify({ op: 'subscribe', filter: {} }));
    };
    socket.onmessage = (m) => onMessage(m.data);
    socket.onclose = onClosed; // also follows a failed handshake (e.g. no /v1/stream route)
  }

  startPolling();
  connect();
  return {
    stop() {
      stopped = true;
      stopPolling();
      window.clearTimeout(reconnectTimer);
      ws?.close(1000);
    },
  };
}
