# syntax=docker/dockerfile:1
# keygate: production dependencies only, Node 24, non-root.
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# The `node` devDependency (which pins Node for `npm start` on old hosts) is not needed:
# this image already runs Node 24.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY config ./config
RUN mkdir -p /app/data && chown node:node /app/data
USER node
VOLUME ["/app/data"]
# 8080: the proxy. 8081: admin API, /metrics, /healthz, /readyz (bind admin.host to 0.0.0.0
# in your config to reach it from outside the container).
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.KEYGATE_ADMIN_PORT||8081)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# What `npm start` runs, without npm in between so SIGTERM reaches keygate directly.
CMD ["node", "bin/keygate.js", "serve"]
