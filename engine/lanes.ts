/**
 * Dispatch lanes: where a job's dispatch travels, by its queue and priority.
 *
 * Each (queue, band) pair has its own dispatch topic, a lane. A worker
 * subscribes to the lanes of the queues it serves, so it receives no other
 * queue's work (routing); and it gives a free handler slot to the highest
 * priority dispatch waiting for one, so a `high` lane's dispatch starts ahead
 * of the `normal` ones a worker already holds (ordering). docs/queues.md
 * states the semantics.
 *
 * Names: the lane of queue `default`, band `normal`, is `ats.dispatch` itself
 * (the one dispatch topic there was before lanes); every other lane is
 * `ats.dispatch.<queue segment>` plus `.high` or `.low` for those bands. The
 * segment is the queue name escaped to Kafka's topic alphabet (`_` → `__`,
 * `.` → `_d`, `:` → `_c`), or `_h` and a hash when the escaped name is longer
 * than {@link MAX_READABLE_SEGMENT}: every name stays within the outbox's
 * 64-character topic column, and two queues never share a lane.
 *
 * Pure: no I/O.
 */
import { createHash } from 'node:crypto';
import { TOPICS } from './ports.js';

export type Band = 'high' | 'normal' | 'low';
/** The bands, in the order a worker serves them. */
export const BANDS: readonly Band[] = Object.freeze(['high', 'normal', 'low']);

/** The queue whose `normal` lane is `ats.dispatch`. */
export const LEGACY_QUEUE = 'default';
/** The longest escaped queue name a lane shows as it is; a longer one is hashed. */
export const MAX_READABLE_SEGMENT = 40;

const LANE_PREFIX = `${TOPICS.dispatch}.`;
const LEGACY_SEGMENT = queueSegment(LEGACY_QUEUE);

/** A priority's band: above 0 `high`, 0 `normal`, below 0 `low`. */
export const bandOf = (priority: number): Band => (priority > 0 ? 'high' : priority < 0 ? 'low' : 'normal');

/** The queue's name in its lanes' topics (see the module note). */
export function queueSegment(queue: string): string {
  const escaped = queue.replace(/[_.:]/g, (c) => (c === '_' ? '__' : c === '.' ? '_d' : '_c'));
  if (escaped.length <= MAX_READABLE_SEGMENT && /^[A-Za-z0-9_-]+$/.test(escaped)) return escaped;
  return `_h${createHash('sha256').update(queue).digest('hex').slice(0, 32)}`;
}

// The lanes of the queues seen lately: a dispatch's topic is looked up, not rebuilt, on the hot path.
const segments = new Map<string, string>();
const SEGMENTS_CACHED = 1000;

/** The topic of the lane of `queue` for `priority` (a logical name: the log adds its prefix). */
export function laneTopic(queue: string, priority: number): string {
  return laneOf(queue, bandOf(priority));
}

/** The topic of the lane (queue, band). */
export function laneOf(queue: string, band: Band): string {
  if (band === 'normal' && queue === LEGACY_QUEUE) return TOPICS.dispatch;
  let segment = segments.get(queue);
  if (segment === undefined) {
    if (segments.size >= SEGMENTS_CACHED) segments.clear();
    segments.set(queue, (segment = queueSegment(queue)));
  }
  return topicOf(segment, band);
}

function topicOf(segment: string, band: Band): string {
  if (band === 'normal') return segment === LEGACY_SEGMENT ? TOPICS.dispatch : LANE_PREFIX + segment;
  return `${LANE_PREFIX}${segment}.${band}`;
}

/** A lane as a topic name tells it: the queue's segment and the band; null for a topic that is no lane. */
export interface LaneName {
  segment: string;
  band: Band;
}

export function parseLane(topic: string): LaneName | null {
  if (topic === TOPICS.dispatch) return { segment: LEGACY_SEGMENT, band: 'normal' };
  if (!topic.startsWith(LANE_PREFIX)) return null;
  const parts = topic.slice(LANE_PREFIX.length).split('.');
  const [segment, band = 'normal'] = parts;
  if (parts.length > 2 || !segment || !/^[A-Za-z0-9_-]+$/.test(segment)) return null;
  if (band !== 'high' && band !== 'low' && !(band === 'normal' && parts.length === 1)) return null;
  return { segment, band };
}

/** Is this topic a dispatch lane (a dispatch or cancel travels on it)? */
export const isLane = (topic: string): boolean => parseLane(topic) !== null;

/** The three lanes of the queue whose segment is `segment`, high first. */
export const lanesOfSegment = (segment: string): string[] => BANDS.map((band) => topicOf(segment, band));

/** The three lanes of `queue`, high first. */
export const lanesOf = (queue: string): string[] => lanesOfSegment(queueSegment(queue));

/**
 * The consumer group of a lane: the workers' group itself for `ats.dispatch`
 * (as before lanes), `<group>.<lane>` for the others. One group per lane,
 * because workers serving different queues must not share a group (a group's
 * members are expected to read the same topics).
 */
export const laneGroup = (groupId: string, topic: string): string =>
  (topic === TOPICS.dispatch ? groupId : `${groupId}.${topic.slice(LANE_PREFIX.length)}`);
