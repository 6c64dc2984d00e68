# A small production image. TypeScript runs through tsx (a runtime dependency), so there is no
# build step; argon2 brings its prebuilt binary for linux/glibc.
FROM node:20-bookworm-slim

WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY tsconfig.json ./
COPY src ./src
COPY migrations ./migrations

# The embedded database (when DATABASE_URL is unset) lives in /data: mount a volume there.
RUN mkdir -p /data && chown node:node /data
ENV HOST=0.0.0.0 PORT=3000 DATA_DIR=/data
VOLUME ["/data"]
USER node
EXPOSE 3000

HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"

# In production JWT_PRIVATE_KEY (or JWT_SECRET with JWT_ALGORITHM=HS256) must be set.
CMD ["node", "--import", "tsx", "src/server.ts"]
