# Tidebox image: one image for both processes.
#   api (default):  node dist/api/main.js
#   worker:         node dist/worker/main.js   (needs the Docker socket; see docs/deploy.md)
# Debian (glibc), not Alpine: the Temporal SDK's native core-bridge ships glibc builds.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Same fallback as scripts/bootstrap.sh: some registry mirrors drop other platforms' optional packages
# from the lockfile, which npm ci rejects; npm install --no-save still installs the locked versions.
RUN npm ci --no-audit --no-fund \
 || { echo "npm ci refused the lockfile; installing the locked versions with npm install --no-save" >&2; \
      npm install --no-audit --no-fund --no-save; }
COPY . .
# tsc + the prebuilt workflow bundle (dist/workflow-bundle.js), then drop the dev dependencies.
RUN npm run build \
 && test -f dist/workflow-bundle.js \
 && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    TIDEBOX_DATA_DIR=/var/lib/tidebox
WORKDIR /app
# iptables: the worker installs the host's egress guard with it (docs/security.md). Debian's default is
# the nf_tables backend; hosts whose Docker uses iptables-legacy set network.iptablesBinary to match.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/*
# Code and dependencies stay root-owned (read-only for the process); only the data dir is writable.
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/ui ./ui
RUN mkdir -p /var/lib/tidebox && chown node:node /var/lib/tidebox
# The node:* images' unprivileged user (uid 1000). The worker additionally needs the Docker socket's
# group: docker run --group-add "$(stat -c %g /var/run/docker.sock)" (compose: group_add, DOCKER_GID).
USER node
EXPOSE 8080
CMD ["node", "dist/api/main.js"]
