/**
 * The `Location` of an answer that names a resource of this server (the 201
 * of a create): a relative reference, which a client resolves against the URL
 * it sent the request to (RFC 3986 §5, as fetch, browsers and `curl -L` do).
 * Behind a reverse proxy that serves the server under a path prefix and
 * strips it (`/scheduler/v1/jobs` reaches the server as `/v1/jobs`), the
 * client's URL is the prefix and then the server's path, so the reference,
 * taken from the server's path, lands under the prefix too; a root-relative
 * `/v1/jobs/<id>` would leave it.
 *
 * The reference climbs (`..`) only out of the folders of the request's own
 * path that the resource's path does not share, never into the prefix: from
 * `POST /v1/jobs` it is `jobs/<id>`, from `POST /v1/jobs/` `<id>`, from
 * `PUT /v1/limits/<key>` `<key>`. The request's query is not part of it.
 */

/**
 * The relative reference from the path of `requestUrl` (the request's URL as
 * the server received it: `request.url`, its query included or not, in
 * absolute form too) to
 * `/<segments joined by />`, each segment percent-encoded
 * (encodeURIComponent, as the client encodes a name: `a:b` is `a%3Ab`).
 */
export function relativeLocation(requestUrl: string, segments: readonly string[]): string {
  // A request in absolute form (`POST http://host/v1/jobs HTTP/1.1`, as to a forward proxy) is routed by its path.
  const url = requestUrl.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/, '');
  const end = url.search(/[?#]/);
  const path = end === -1 ? url : url.slice(0, end);
  // The folders the request's path is in (`/v1/jobs` → [v1]; `/v1/jobs/` → [v1, jobs]), as sent.
  const folders = path.split('/').slice(1, -1);
  const target = segments.map((s) => encodeURIComponent(s));
  let shared = 0;
  while (shared < folders.length && shared < target.length - 1 && folders[shared] === target[shared]) shared++;
  // Neither `.` nor `..` can be a segment of the target (encodeURIComponent leaves dots, but the names
  // that are segments refuse those, server/schemas.ts PATH_NAME_PATTERN), and no segment holds a `:`
  // (encoded), so the reference's first segment is never read as a scheme.
  return '../'.repeat(folders.length - shared) + target.slice(shared).join('/');
}
