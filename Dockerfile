# syntax=docker/dockerfile:1
#
# The scheduler image: one image, every role. Which roles a container runs is
# set by ATS_ROLES (or `--role`), e.g. `docker run -e ATS_ROLES=worker ...`;
# docker-compose.yml runs api, relay, worker and timers from it. With no
# MYSQL_URL / KAFKA_BROKERS it runs all roles on the embedded SQLite store in
# /app/data (mount a volume there to keep it).
#
# The API listens on 0.0.0.0 here (HOST), where it refuses to start (exit 2)
# until an API key exists or ATS_AUTH=off says to serve without keys. Make the
# first key in the same store, e.g. with the embedded one:
#   docker run --rm -v ats-data:/app/data IMAGE keys create --tenant default --scopes submit,read,operate,admin --name admin
#   docker run -p 3000:3000 -v ats-data:/app/data IMAGE
#
# The image runs the JavaScript that `npm run build` writes to dist/ (and the
# visualizer's bundle, built then): the build stage installs every dependency,
# builds, then prunes to production ones; the runtime stage gets dist/ and
# those, with neither tsx nor esbuild.

# ---------------------------------------------------------------- build
FROM node:20-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 downloads a prebuilt binary when one matches this Node and
# platform; when none does it compiles from source, which needs these tools.
# They stay in this stage: the runtime image gets only node_modules and dist/.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.ts ./scripts/build.ts
COPY machines ./machines
COPY engine ./engine
COPY adapters ./adapters
COPY server ./server
COPY cli ./cli
COPY client ./client
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# ---------------------------------------------------------------- runtime
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    ATS_DATA_DIR=/app/data
WORKDIR /app
# Code and dependencies stay owned by root (read-only for the app user); only
# the data folder of the embedded store is writable.
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
RUN mkdir -p /app/data && chown node:node /app/data

# The `node` user (uid 1000) ships with the official image.
USER node
EXPOSE 3000

# Liveness, with node's fetch (slim has no curl): /healthz on the API port for
# a container with the api role, else on ATS_METRICS_PORT (the relay, worker
# and timers serve it there). A container with neither serves no HTTP: it
# reports healthy instead of failing forever.
# The check reads the roles and the ports from ATS_ROLES, PORT and
# ATS_METRICS_PORT only: set them in the environment, not as `--role` /
# `--port` / `--metrics-port` flags, or it checks the wrong thing.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "const roles = (process.env.ATS_ROLES || 'api').split(',').map((r) => r.trim()); const port = roles.includes('api') || roles.includes('all') ? (process.env.PORT || 3000) : process.env.ATS_METRICS_PORT; if (!port) process.exit(0); fetch('http://127.0.0.1:' + port + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1));"]

# The node flags are cli/node-flags.ts's.
# node is PID 1 here: `ats start` handles SIGTERM itself (drains, then exits),
# so no shell wrapper may stand in between and swallow the signal.
ENTRYPOINT ["node", "--max-semi-space-size=32", "dist/cli/main.js"]
CMD ["start"]
