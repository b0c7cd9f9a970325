# The deployer's image: built with the dev dependencies (TypeScript), run with the production ones only.
# Build: docker build -t registry.example.com/deployer:main-$(git rev-parse --short=7 HEAD) .
# There is no HEALTHCHECK: Kubernetes probes /healthz and /readyz (kubernetes/app/deployment.yaml).

# Node's LTS line on Debian 12, slim: the line of .node-version, which CI tests on (package.json engines).
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS production-dependencies
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
# git and svn read the services' repositories; openssh-client for git over ssh; tini as PID 1 reaps the git, ssh
# and svn processes a timeout leaves behind and passes SIGTERM on to node.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client subversion ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
# A numeric user, so that the kubelet can check runAsNonRoot; with a passwd entry, which ssh insists on.
RUN groupadd --gid 10001 deployer \
 && useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin deployer \
 && mkdir -p /var/cache/deployer \
 && chown 10001:10001 /var/cache/deployer
WORKDIR /app
# V8 flags for the resident set (bench/run.ts, section Memory). --max-semi-space-size=1: the young generation grows
# while the ~500 modules load and keeps its pages afterwards; at 16 MiB an idle deployer held 15 MiB of new space
# with 0.2 MiB live in it (idle 94 → 80 MiB, after 20 deploys 127 → 101 MiB). A deploy's garbage is small and
# short-lived: 20 deploys took as much CPU either way (1.25–1.34 s against 1.28–1.45 s). --v8-pool-size=2: V8's
# helper threads (GC, compilers) are 4 by default; the pod has one CPU at most (limits.cpu) and each thread keeps
# a malloc arena (~1 MiB).
ENV NODE_ENV=production NODE_OPTIONS="--max-semi-space-size=1 --v8-pool-size=2"
COPY --from=production-dependencies /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# src/main.ts reads its version from ../package.json.
COPY package.json ./
# The clone cache (config cache.dir); an emptyDir in Kubernetes, a volume elsewhere.
VOLUME ["/var/cache/deployer"]
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/main.js"]
