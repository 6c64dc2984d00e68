# syntax=docker/dockerfile:1
# The production image: compiled JavaScript on Node.js 22 LTS, production dependencies only, run
# as the unprivileged `node` user. Build: docker build -t authservice .
# (The code also runs on Node.js 20.19+; 24 LTS works too: --build-arg NODE_VERSION=24.)
ARG NODE_VERSION=22

# 1. Compile src/ to dist/ with the full (dev) dependencies.
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# postinstall applies patches/ (patch-package): the patched postgres.js must be in both stages.
COPY patches ./patches
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# The build also makes the embedded database's template (scripts/pglite-template.mjs); the image
# runs on PostgreSQL and does not copy node_modules from this stage, so it is skipped here.
COPY scripts/pglite-template.mjs ./scripts/
RUN AUTHSERVICE_PGLITE_TEMPLATE=0 npm run build

# 2. Production dependencies only (argon2 brings its prebuilt linux/glibc binary; no compiler).
FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# 3. The runtime: no TypeScript, no tsx, no build tools.
FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000 DATA_DIR=/data
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY migrations ./migrations
COPY scripts/keygen.mjs ./scripts/keygen.mjs
# The CLI (`npx authservice …`, `npm run keys:rotate`): its entry runs dist/cli.js here.
COPY bin ./bin
# /data: the embedded database, only with ALLOW_EMBEDDED_DATABASE=true; /keys: compose's signing key.
RUN mkdir -p /data /keys && chown node:node /data /keys
USER node
EXPOSE 3000

# The readiness probe: the database answers and is migrated, and the process is not shutting down.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/health/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# node is PID 1 and handles SIGTERM itself: it stops accepting, drains requests and background
# work, stops the mail worker (queued mail stays queued) and exits within SHUTDOWN_TIMEOUT (10 s).
STOPSIGNAL SIGTERM
CMD ["node", "dist/main.cjs"]
