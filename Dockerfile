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
# Node 24's young generation grows to 3 × 32 MiB semi-spaces under load and keeps them (RSS +23 % after a burst of
# requests, test/hardening/load.test.ts); 16 MiB keeps the resident set near its idle level at no measurable cost.
ENV NODE_ENV=production NODE_OPTIONS=--max-semi-space-size=16
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
